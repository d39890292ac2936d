import { Decoder, Encoder, PacketType } from 'socket.io-parser';

/**
 * socket.io's parser without binary attachments. The protocol is JSON only, and a binary packet
 * announces attachments that the stock decoder then waits for without bound; here it is a
 * protocol error, which closes the connection at once.
 */
class TextOnlyDecoder extends Decoder {
  override add(chunk: unknown): void {
    if (typeof chunk !== 'string') throw new Error('binary frames are not supported');
    const type = Number(chunk[0]);
    if (type === PacketType.BINARY_EVENT || type === PacketType.BINARY_ACK) throw new Error('binary packets are not supported');
    super.add(chunk);
  }
}

export const textOnlyParser = { Encoder, Decoder: TextOnlyDecoder };
