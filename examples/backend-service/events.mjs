/**
 * Reads the chat service's event stream (a Redis Stream, `chat.events` by default) with a
 * consumer group, so several replicas of a service share the work and a restart resumes where it
 * stopped. Entries are acknowledged (XACK) after they were handled.
 *
 * Each entry has the fields `id` (the event id), `type`, `roomId` and `data` (JSON). Events are
 * delivered at least once: after a relay fail-over the same event can appear again with the same
 * `id`, so handlers must be idempotent or skip ids they have seen.
 */

const BATCH = 100;
const MAX_BLOCK_MS = 1000;

/** Creates the group at the end of the stream (creating the stream too); an existing group keeps its position. */
export async function ensureGroup(redis, stream, group) {
  try {
    await redis.xgroup('CREATE', stream, group, '$', 'MKSTREAM');
  } catch (err) {
    if (!String(err?.message).startsWith('BUSYGROUP')) throw err;
  }
}

/** The most recent event ids, bounded so a long-running consumer does not grow without end. */
export class RecentIds {
  #ids = new Set();
  constructor(max = 100_000) {
    this.max = max;
  }
  has(id) {
    return this.#ids.has(id);
  }
  add(id) {
    this.#ids.add(id);
    if (this.#ids.size > this.max) this.#ids.delete(this.#ids.values().next().value);
  }
}

/** An entry's flat [field, value, ...] list as an event; null when it is not one. */
export function toEvent(fields) {
  if (!Array.isArray(fields)) return null;
  const entry = {};
  for (let i = 0; i + 1 < fields.length; i += 2) entry[fields[i]] = fields[i + 1];
  if (typeof entry.id !== 'string' || typeof entry.type !== 'string') return null;
  try {
    return { id: entry.id, type: entry.type, roomId: entry.roomId, data: JSON.parse(entry.data) };
  } catch {
    return null;
  }
}

/**
 * Reads until `shouldStop()` says so. First the entries this consumer read before but never
 * acknowledged (it stopped between reading and XACK), then new ones. Calls `onEvent` once per
 * event id, `onDuplicate` for a repeated id, `onMalformed` for an entry that is not an event
 * (acknowledged too, so it cannot block the group).
 */
export async function consume(
  redis,
  { stream, group, consumer, shouldStop, blockMs = () => MAX_BLOCK_MS, onEvent, onDuplicate, onMalformed },
) {
  const seen = new RecentIds();
  let cursor = '0'; // '0': this consumer's pending entries; '>': entries no consumer of the group has read
  while (!shouldStop()) {
    const block = Math.max(1, Math.min(MAX_BLOCK_MS, blockMs()));
    const reply = await redis.xreadgroup('GROUP', group, consumer, 'COUNT', BATCH, 'BLOCK', block, 'STREAMS', stream, cursor);
    const entries = reply?.[0]?.[1] ?? [];
    if (cursor !== '>' && entries.length === 0) {
      cursor = '>';
      continue;
    }
    for (const [entryId, fields] of entries) {
      const event = toEvent(fields);
      if (!event) await onMalformed?.(entryId, fields);
      else if (seen.has(event.id)) await onDuplicate?.(event, entryId);
      else {
        await onEvent(event, entryId);
        seen.add(event.id);
      }
      await redis.xack(stream, group, entryId);
      if (cursor !== '>') cursor = entryId;
    }
  }
}
