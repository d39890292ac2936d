// Helpers of the load-generator process (bench/load/worker.mjs and the soak's handlers): pacing,
// error counting, and a room rejoin that catches up on what the client missed. Every loop and
// wait here is bounded in count or time.
import { nowUs } from '../lib/hist.mjs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const PAD = 'x'.repeat(200);

export function countError(errors, reply) {
  const code = reply?.error?.code ?? 'UNKNOWN';
  errors[code] = (errors[code] ?? 0) + 1;
}

/**
 * A paced open-loop sender: `send(i)` is called `rate` times a second from t0 for durationUs,
 * catching up after timer slips but never by more than 100 ms of sends (the rest counts as skipped).
 */
export function pace({ t0, durationUs, rate, send, stopped = () => false }) {
  return new Promise((resolve) => {
    let sent = 0;
    let skipped = 0;
    const cap = Math.max(1, Math.ceil(rate * 0.1));
    const startIn = Math.max(0, (t0 - nowUs()) / 1000);
    setTimeout(() => {
      const timer = setInterval(() => {
        const elapsed = nowUs() - t0;
        if (elapsed >= durationUs || stopped()) {
          clearInterval(timer);
          return resolve({ sent, skipped });
        }
        let due = Math.floor((elapsed / 1e6) * rate) - sent - skipped;
        if (due > cap) {
          skipped += due - cap;
          due = cap;
        }
        for (let k = 0; k < due; k++) send(sent++);
      }, 2);
    }, startIn);
  });
}

/**
 * Joins `room` on client `c`; with `recover`, as room.join { sinceSeq: since() } and then history
 * pages while `hasMore` (docs/protocol.md §9), every recovered message given to `mark`. `since` is
 * read again for each page, as `mark` moves it. Up to 10 join attempts and 200 pages.
 * Returns 'done', 'closed' (the connection dropped meanwhile) or 'failed'.
 */
export async function rejoin(c, { room, recover, since, mark, errors }) {
  for (let tries = 0; tries < 10; tries++) {
    const join = await c.request('room.join', recover ? { roomId: room, sinceSeq: since() } : { roomId: room });
    if (!join.ok) {
      countError(errors, join);
      if (!c.open) return 'closed';
      await sleep(100 * (tries + 1));
      continue;
    }
    if (recover) {
      for (const m of join.data.missed ?? []) mark(m);
      let more = join.data.hasMore;
      for (let pages = 0; more && pages < 200; pages++) {
        const page = await c.request('message.history', { roomId: room, afterSeq: since(), limit: 100 });
        if (!page.ok) {
          countError(errors, page);
          await sleep(100);
          continue;
        }
        for (const m of page.data.messages) mark(m);
        more = page.data.hasMore;
      }
    }
    return 'done';
  }
  return 'failed';
}
