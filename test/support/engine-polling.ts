/** engine.io protocol v4 over HTTP long polling, spoken by hand: the packets a hostile client can send. */
export const RECORD_SEPARATOR = '\x1e';

export interface PollAnswer {
  status: number;
  packets: string[];
}

export class PollingSession {
  private constructor(
    private readonly base: string,
    readonly sid: string,
  ) {}

  /** Opens an engine.io session (GET without sid); throws with the status when refused. */
  static async open(url: string, headers: Record<string, string> = {}): Promise<PollingSession> {
    const answer = await PollingSession.openRaw(url, headers);
    if (answer.status !== 200) throw new Error(`handshake refused: ${answer.status}`);
    const open = JSON.parse(answer.packets[0].slice(1)) as { sid: string };
    return new PollingSession(url, open.sid);
  }

  static async openRaw(url: string, headers: Record<string, string> = {}): Promise<PollAnswer> {
    return answerOf(await fetch(`${url}/socket.io/?EIO=4&transport=polling`, { headers }));
  }

  /** Sends packets in one POST, separated as the protocol says. */
  async post(packets: string[]): Promise<PollAnswer> {
    const res = await fetch(this.target(), {
      method: 'POST',
      body: packets.join(RECORD_SEPARATOR),
      headers: { 'content-type': 'text/plain' },
    });
    return answerOf(res);
  }

  /** One poll: what the server had queued (held up to pingInterval when nothing is). */
  async poll(signal?: AbortSignal): Promise<PollAnswer> {
    return answerOf(await fetch(this.target(), { signal }));
  }

  private target(): string {
    return `${this.base}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(this.sid)}`;
  }
}

async function answerOf(res: Response): Promise<PollAnswer> {
  const text = await res.text();
  return { status: res.status, packets: text === '' ? [] : text.split(RECORD_SEPARATOR) };
}
