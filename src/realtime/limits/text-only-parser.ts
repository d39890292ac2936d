import { Decoder, Encoder, PacketType } from 'socket.io-parser';

/**
 * socket.io's parser without binary attachments, and with one CONNECT per engine.io session (socket.io
 * makes one decoder per session). The protocol is JSON only, and a binary packet announces
 * attachments that the stock decoder then waits for without bound. The service has one namespace
 * and closes a session whose CONNECT was refused, so a second CONNECT is never legitimate: sent
 * while the first is pending it would run the token check again and open a socket nobody can
 * reach. Each is a protocol error, which closes the session at once.
 */
class TextOnlyDecoder extends Decoder {
  private connectSeen = false;

  override add(chunk: unknown): void {
    if (typeof chunk !== 'string') throw new Error('binary frames are not supported');
    const type = Number(chunk[0]);
    if (type === PacketType.BINARY_EVENT || type === PacketType.BINARY_ACK) throw new Error('binary packets are not supported');
    if (type === PacketType.CONNECT) {
      if (this.connectSeen) throw new Error('one CONNECT per session');
      this.connectSeen = true;
    }
    super.add(chunk);
  }
}

export const textOnlyParser = { Encoder, Decoder: TextOnlyDecoder };
