import { ChatError } from '../chat/chat.errors.js';
import { fieldsNestedTooDeep, MAX_DATA_DEPTH } from '../common/payload-shape.js';

/** A JSON body must be an object, nested no deeper than sockets allow; anything else is refused before its fields are read. */
export function asObject(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ChatError('VALIDATION_FAILED', 'the body must be a JSON object', { fields: [] });
  }
  const tooDeep = fieldsNestedTooDeep(body);
  if (tooDeep) throw new ChatError('VALIDATION_FAILED', `the body nests deeper than ${MAX_DATA_DEPTH} levels`, { fields: tooDeep });
  return body as Record<string, unknown>;
}

/**
 * Path and query parameters are text: a plain decimal integer becomes a number; anything else
 * ('abc', '-1', '1.5', too many digits, or the array or object Express makes of `?a=1&a=2` and
 * `?a[b]=1`) is passed on as it is, so the domain's schema refuses it with VALIDATION_FAILED
 * naming the parameter.
 */
export function integerParam(value: unknown): unknown {
  return typeof value === 'string' && /^\d{1,15}$/.test(value) ? Number(value) : value;
}
