/** Injection token for the bound on every storage call, in milliseconds. */
export const STORAGE_TIMEOUT_MS = Symbol('STORAGE_TIMEOUT_MS');
