/** Polls `check` every `everyMs` until it answers true (a throw counts as false); fails after `timeoutMs` naming `what`. */
export async function until(check: () => Promise<boolean>, timeoutMs: number, what: string, everyMs = 100): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`${what} within ${timeoutMs} ms`);
}
