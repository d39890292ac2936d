/** Injection token for the bound on every storage call, in milliseconds. */
export const STORAGE_TIMEOUT_MS = Symbol('STORAGE_TIMEOUT_MS');
/** Injection token for the longest a send may wait for company in its batch (AppendBatcher), in milliseconds. */
export const APPEND_LINGER_MS = Symbol('APPEND_LINGER_MS');
