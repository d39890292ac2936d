/**
 * How long a request id stays claimed. Every replica receives a request within moments of the
 * others; the claim only has to outlive the slowest of them (a replica stalled by GC or load
 * would otherwise find the key gone and run the request again), not the request itself.
 */
export const CLAIM_TTL_MS = 30_000;

/** A claim that Redis does not confirm in this time counts as failed: the request is left unanswered, not run twice. */
export const CLAIM_TIMEOUT_MS = 1000;

/** The one Redis command a claim needs (ioredis's signature). */
export interface ClaimStore {
  set(key: string, value: string, px: 'PX', ttlMs: number, nx: 'NX'): Promise<string | null>;
}

/**
 * Makes each command request run on exactly one replica: every replica receives it on the channel,
 * and the first `SET <prefix>:cmd:<pattern>:<id> <owner> NX PX <ttl>` wins; the others drop it.
 */
export class CommandClaims {
  constructor(
    private readonly prefix: string,
    /** Stored as the key's value, so an operator can see which instance took a request. */
    private readonly owner: string,
    private readonly ttlMs = CLAIM_TTL_MS,
    private readonly timeoutMs = CLAIM_TIMEOUT_MS,
  ) {}

  key(pattern: string, id: string): string {
    return `${this.prefix}:cmd:${pattern}:${id}`;
  }

  /** True when this instance won the request; false when another one did. Rejects when Redis fails or is too slow to say. */
  async claim(store: ClaimStore, pattern: string, id: string): Promise<boolean> {
    const answer = await withTimeout(store.set(this.key(pattern, id), this.owner, 'PX', this.ttlMs, 'NX'), this.timeoutMs);
    return answer === 'OK';
  }
}

/** `promise`, or a rejection once `ms` have passed. */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from Redis within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
