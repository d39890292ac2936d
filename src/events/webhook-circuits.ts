import type { AppConfig } from '../config/config.schema.js';

type CircuitPolicy = NonNullable<AppConfig['webhooks']>['circuit'];

interface UrlState {
  inFlight: number;
  /** Failed attempts since the last success. */
  failures: number;
  /** While open: when the next probe may go. 0 while closed. */
  openUntil: number;
  /** A half-open circuit's single probe is in flight. */
  probing: boolean;
}

export type CircuitChange = 'opened' | 'closed';

/**
 * Per-URL admission for webhook requests: a slow or dead receiver can hold at most `perUrl`
 * requests, so it never takes the slots the healthy ones need; after `failures` consecutive
 * failures its circuit opens and nothing is sent to it (its deliveries keep their attempt counts
 * and wait) until `cooldownMs` has passed, when a single probe decides: success closes the
 * circuit, failure opens it for another cool-down.
 */
export class UrlCircuits {
  private readonly urls = new Map<string, UrlState>();

  constructor(
    private readonly policy: CircuitPolicy,
    private readonly now: () => number = Date.now,
  ) {}

  /** URLs that can take no request now (full, open, or probing): left out of the due query. */
  blocked(): string[] {
    const at = this.now();
    return [...this.urls].filter(([, s]) => !this.admissible(s, at)).map(([url]) => url);
  }

  /** Takes a request slot for `url`; false when it has none now. */
  admit(url: string): boolean {
    const state = this.state(url);
    if (!this.admissible(state, this.now())) return false;
    if (state.openUntil > 0) state.probing = true;
    state.inFlight++;
    return true;
  }

  /** Gives the slot back with the request's outcome; says when the circuit changed. */
  settle(url: string, ok: boolean): CircuitChange | null {
    const state = this.state(url);
    state.inFlight--;
    const wasOpen = state.openUntil > 0;
    const probe = state.probing;
    state.probing = false;
    if (ok) {
      state.failures = 0;
      state.openUntil = 0;
      return wasOpen ? 'closed' : null;
    }
    state.failures++;
    if (probe) state.openUntil = this.now() + this.policy.cooldownMs;
    // Requests admitted before the circuit opened may still fail after it: they do not extend it.
    else if (!wasOpen && state.failures >= this.policy.failures) {
      state.openUntil = this.now() + this.policy.cooldownMs;
      return 'opened';
    }
    return null;
  }

  /** URLs whose circuit is open now (a probe may be in flight). */
  openUrls(): string[] {
    return [...this.urls].filter(([, s]) => s.openUntil > 0).map(([url]) => url);
  }

  private admissible(state: UrlState, at: number): boolean {
    if (state.openUntil > 0) return !state.probing && state.inFlight === 0 && at >= state.openUntil;
    return state.inFlight < this.policy.perUrl;
  }

  private state(url: string): UrlState {
    let state = this.urls.get(url);
    if (!state) {
      state = { inFlight: 0, failures: 0, openUntil: 0, probing: false };
      this.urls.set(url, state);
    }
    return state;
  }
}
