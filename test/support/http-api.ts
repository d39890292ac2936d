import type { Instance } from './instance.js';

export type Method = 'GET' | 'PUT' | 'DELETE' | 'POST' | 'PATCH';

export interface HttpAnswer {
  status: number;
  /** The parsed JSON body (null when empty); its shape is the route's. */
  body: any;
}

/** One call of the service's HTTP API; `key: null` sends no X-API-Key. Bounded by 5 s. */
export async function apiCall(
  inst: Instance,
  method: Method,
  path: string,
  { body, key }: { body?: unknown; key: string | null },
): Promise<HttpAnswer> {
  const headers: Record<string, string> = {};
  if (key !== null) headers['x-api-key'] = key;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${inst.url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}
