/** Longer ids are refused: a Nest client's ids are UUIDs, and each id becomes part of a Redis key. */
export const MAX_REQUEST_ID_LENGTH = 128;

/**
 * One message from a command channel: a request as Nest's ClientProxy publishes it
 * (`{ pattern, data, id }`), or something this service does not answer, with the reason.
 */
export type CommandPacket = { kind: 'request'; id: string; data: unknown } | { kind: 'ignored'; reason: string };

const ignored = (reason: string): CommandPacket => ({ kind: 'ignored', reason });

/**
 * Reads a raw channel message without trusting it. Only a request with an id can be claimed by one
 * instance and answered, so anything without a usable id is ignored: not JSON, not an object, an
 * event published with `client.emit()` (no id; every replica would otherwise run it), an id that
 * is not a string of 1-128 characters, or a message above the payload limit.
 */
export function parseCommandPacket(raw: string | Buffer, maxBytes: number): CommandPacket {
  const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.length;
  if (size > maxBytes) return ignored(`larger than MAX_PAYLOAD_BYTES (${size} > ${maxBytes} bytes)`);
  let packet: unknown;
  try {
    packet = JSON.parse(raw.toString());
  } catch {
    return ignored('not JSON');
  }
  if (typeof packet !== 'object' || packet === null || Array.isArray(packet)) return ignored('not a JSON object');
  const { id, data } = packet as Record<string, unknown>;
  if (id === undefined) return ignored('no id: commands must be sent with send(), not emit()');
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_REQUEST_ID_LENGTH) {
    return ignored(`the id must be a string of 1-${MAX_REQUEST_ID_LENGTH} characters`);
  }
  return { kind: 'request', id, data };
}
