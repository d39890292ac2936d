/** A small client of the chat service's HTTP API for backend services (`/v1`, header `X-API-Key`). */

/** A non-2xx answer; `code` is the protocol's error code (VALIDATION_FAILED, NOT_FOUND, ...). */
export class ChatApiError extends Error {
  constructor(method, path, status, error) {
    super(`${method} ${path} answered ${status} ${error?.code ?? ''}: ${error?.message ?? 'no error body'}`);
    this.name = 'ChatApiError';
    this.status = status;
    this.code = error?.code;
  }
}

/**
 * @param {string} baseUrl where the service (or its load balancer) listens, e.g. http://localhost:3000
 * @param {string} apiKey one of the service's API_KEYS (a read-only `key:read` cannot write)
 */
export function chatApi(baseUrl, apiKey, { timeoutMs = 5000 } = {}) {
  const base = baseUrl.replace(/\/+$/, '');

  async function call(method, path, body) {
    const headers = { 'x-api-key': apiKey };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // A proxy in front of the service may answer HTML; the status says enough.
    }
    if (!res.ok) throw new ChatApiError(method, path, res.status, json?.error);
    return { status: res.status, body: json };
  }

  const room = (roomId) => `/v1/rooms/${encodeURIComponent(roomId)}`;

  return {
    /** PUT replaces the room: 201 when created, 200 when it existed. Returns the Room. */
    upsertRoom: (roomId, { visibility, title, metadata }) => call('PUT', room(roomId), { visibility, title, metadata }),
    /** Idempotent: 204 whether or not the user was a member already. */
    addMember: (roomId, userId) => call('PUT', `${room(roomId)}/members/${encodeURIComponent(userId)}`),
    /**
     * A message from the service itself (senderId "system"), delivered live to the room's members.
     * `clientMsgId` makes a retry safe: a repeat answers 200 with the stored message instead of 201.
     */
    postSystemMessage: (roomId, body, clientMsgId) => call('POST', `${room(roomId)}/messages`, { body, system: true, clientMsgId }),
  };
}
