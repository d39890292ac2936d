import { randomUUID } from 'node:crypto';
import type { AppConfig } from '../config/config.schema.js';
import { PresendHook, type PresendAnswer, type PresendRequest } from '../chat/chat.ports.js';
import { standardWebhookHeaders } from '../events/webhook-signature.js';

type HookConfig = NonNullable<AppConfig['presendHook']>;

/** How one hook call ended: the label of chat_presend_hook_duration_seconds. */
export type PresendOutcome = 'allow' | 'modify' | 'reject' | 'bad_answer' | 'timeout' | 'unreachable' | 'overloaded';

/**
 * The pre-send hook over HTTP: one signed POST per message (Standard Webhooks headers keyed by
 * WEBHOOK_SECRET), never per batch. Calls are concurrent, up to `concurrency` in flight; more
 * wait in a FIFO queue of at most `queue`, and one that finds the queue full gets no answer at
 * once (no valid answer: fail open or closed). The timeout counts from the call, so waiting for a
 * slot is part of it. A slow hook delays only the sends waiting on it.
 */
export class HttpPresendHook extends PresendHook {
  readonly failOpen: boolean;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly config: HookConfig,
    /** Bytes of answer read at most: a larger one is a bad answer. */
    private readonly maxAnswerBytes: number,
    private readonly observe: (outcome: PresendOutcome, seconds: number) => void = () => undefined,
  ) {
    super();
    this.failOpen = config.failOpen;
  }

  async ask(request: PresendRequest, acceptBody: (body: string) => boolean): Promise<PresendAnswer | null> {
    const started = performance.now();
    const { outcome, answer } = await this.call(request, acceptBody);
    this.observe(outcome, (performance.now() - started) / 1000);
    return answer;
  }

  private async call(
    request: PresendRequest,
    acceptBody: (body: string) => boolean,
  ): Promise<{ outcome: PresendOutcome; answer: PresendAnswer | null }> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.config.timeoutMs);
    try {
      if (!(await this.acquire(abort.signal))) return { outcome: abort.signal.aborted ? 'timeout' : 'overloaded', answer: null };
      try {
        const text = await this.post(request, abort.signal);
        if (text === null) return { outcome: 'bad_answer', answer: null };
        const answer = parseAnswer(text, acceptBody);
        return { outcome: answer?.action ?? 'bad_answer', answer };
      } finally {
        this.release();
      }
    } catch {
      return { outcome: abort.signal.aborted ? 'timeout' : 'unreachable', answer: null };
    } finally {
      clearTimeout(timer);
    }
  }

  /** The answer's text when it is 2xx and small enough, else null; throws on a network error or the timeout. */
  private async post(request: PresendRequest, signal: AbortSignal): Promise<string | null> {
    const body = JSON.stringify(request);
    const timestamp = String(Math.floor(Date.now() / 1000));
    const signature = this.config.secret ? standardWebhookHeaders(this.config.secret, randomUUID(), timestamp, body) : {};
    const res = await fetch(this.config.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'chat-service-presend-hook/1', ...signature },
      body,
      // Only a 2xx answer counts; a redirect is a bad answer.
      redirect: 'manual',
      signal,
    });
    if (res.status < 200 || res.status >= 300 || !res.body) {
      await res.body?.cancel();
      return null;
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += chunk.byteLength;
      if (size > this.maxAnswerBytes) {
        await res.body.cancel().catch(() => undefined);
        return null;
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  /** A slot, waiting in the queue while all are taken; false when the queue is full or `signal` aborts first. */
  private acquire(signal: AbortSignal): Promise<boolean> {
    if (this.inFlight < this.config.concurrency) {
      this.inFlight++;
      return Promise.resolve(true);
    }
    if (this.waiting.length >= this.config.queue) return Promise.resolve(false);
    return new Promise((resolve) => {
      const granted = () => {
        signal.removeEventListener('abort', gaveUp);
        resolve(true);
      };
      const gaveUp = () => {
        this.waiting.splice(this.waiting.indexOf(granted), 1);
        resolve(false);
      };
      this.waiting.push(granted);
      signal.addEventListener('abort', gaveUp, { once: true });
    });
  }

  /** Hands the slot to the first waiter, if any, else frees it. */
  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.inFlight--;
  }
}

/** A valid answer, or null: not JSON, an unknown action, a field of the wrong type, a refused body. */
export function parseAnswer(text: string, acceptBody: (body: string) => boolean): PresendAnswer | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const answer = value as { action?: unknown; body?: unknown; reason?: unknown };
  switch (answer.action) {
    case 'allow':
      return { action: 'allow' };
    case 'modify':
      return typeof answer.body === 'string' && acceptBody(answer.body) ? { action: 'modify', body: answer.body } : null;
    case 'reject':
      if (answer.reason === undefined || answer.reason === null) return { action: 'reject', reason: null };
      return typeof answer.reason === 'string' ? { action: 'reject', reason: answer.reason } : null;
    default:
      return null;
  }
}
