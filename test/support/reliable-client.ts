import { connect, sleep, type Kind, type Reply, type TestClient } from './clients.js';
import { tokenFor } from './tokens.js';

export interface Ack {
  clientMsgId: string;
  id: string;
  seq: number;
  /** When the ack arrived (epoch ms). */
  at: number;
}

/**
 * A client as the contract asks them to behave: it sends each message with its own clientMsgId
 * and retries it until `ok`, reconnecting to another live instance whenever its connection dies.
 */
export class ReliableClient {
  readonly acks: Ack[] = [];
  /** Milliseconds from request to an UNAVAILABLE answer, for each one received. */
  readonly unavailableAfterMs: number[] = [];
  /** Requests that got no answer at all within the request timeout. */
  unanswered = 0;
  /** Requests whose connection closed before their answer came: they are retried elsewhere. */
  cutOff = 0;
  reconnects = 0;
  client: TestClient | null = null;
  private stopped = false;
  private closed = false;
  private next = 0;

  constructor(
    readonly name: string,
    readonly kind: Kind,
    private readonly urls: () => string[],
    private readonly roomId: string,
    private preferred = 0,
  ) {}

  /** Connects to a live instance, starting with the preferred one; retries until `deadline`. */
  private async ensureConnected(deadline: number): Promise<TestClient> {
    if (this.client?.isOpen) return this.client;
    if (this.client) this.reconnects++;
    this.client?.close();
    this.client = null;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      const urls = this.urls();
      const url = urls[(this.preferred + attempt) % urls.length];
      try {
        this.client = await connect(this.kind, url, await tokenFor(this.name));
        this.preferred = urls.indexOf(url);
        return this.client;
      } catch {
        await sleep(100);
      }
    }
    throw new Error(`${this.name}: could not connect to any instance`);
  }

  currentUrl(): string {
    return this.urls()[this.preferred];
  }

  /** Sends one message until ok; resolves with the ack. */
  async sendUntilOk(body: string, clientMsgId: string, budgetMs = 60_000): Promise<Ack> {
    const deadline = Date.now() + budgetMs;
    while (Date.now() < deadline && !this.closed) {
      let client: TestClient;
      try {
        client = await this.ensureConnected(deadline);
      } catch {
        break;
      }
      const started = Date.now();
      let reply: Reply | null = null;
      try {
        // A dead connection ends the attempt at once; only a live one that stays silent counts as unanswered.
        reply = await Promise.race([
          client.request('message.send', { roomId: this.roomId, body, clientMsgId }, 4000),
          client.whenClosed().then(() => null),
        ]);
      } catch {
        if (client.isOpen) this.unanswered++;
      }
      if (reply === null && !client.isOpen) this.cutOff++;
      if (reply?.ok) {
        const ack = { clientMsgId, id: reply.data.id, seq: reply.data.seq, at: Date.now() };
        this.acks.push(ack);
        return ack;
      }
      if (reply?.error?.code === 'RATE_LIMITED') {
        await sleep(Math.min(Number(reply.error.details?.retryAfterMs) || 100, 2000));
        continue;
      }
      if (reply?.error?.code === 'UNAVAILABLE') this.unavailableAfterMs.push(Date.now() - started);
      else if (reply) throw new Error(`${this.name}: unexpected reply ${JSON.stringify(reply)}`);
      await sleep(100);
    }
    throw new Error(`${this.name}: ${clientMsgId} not acknowledged within ${budgetMs} ms`);
  }

  /** Sends numbered messages one after another until stop(); each is retried until ok. */
  async runLoop(pauseMs = 20): Promise<void> {
    while (!this.stopped) {
      const n = this.next++;
      const clientMsgId = `${this.name}-${n}`;
      try {
        await this.sendUntilOk(`${clientMsgId} body`, clientMsgId);
      } catch (err) {
        if (this.closed) return; // torn down by a failing test: not a second failure
        throw err;
      }
      await sleep(pauseMs);
    }
  }

  stop(): void {
    this.stopped = true;
  }

  close(): void {
    this.stopped = true;
    this.closed = true;
    this.client?.close();
  }
}
