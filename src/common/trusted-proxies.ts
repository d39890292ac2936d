import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) is `10.0.0.1`. */
function plain(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

function family(address: string): 'ipv4' | 'ipv6' {
  return isIP(address) === 6 ? 'ipv6' : 'ipv4';
}

/** An address (`10.0.0.5`, `::1`) or a subnet (`10.0.0.0/8`, `fd00::/8`): what TRUSTED_PROXIES lists. */
export function isProxyEntry(entry: string): boolean {
  const [address, bits, extra] = entry.split('/');
  if (extra !== undefined || !isIP(address)) return false;
  if (bits === undefined) return true;
  const max = isIP(address) === 6 ? 128 : 32;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= max;
}

/**
 * Which address a request comes from, for limits per address. Behind a load balancer every
 * client would otherwise share the balancer's address (and its one handshake bucket). So when the
 * TCP peer is one of the operator's proxies (TRUSTED_PROXIES), the client is the right-most
 * X-Forwarded-For hop that is not a trusted proxy: hops further left were written by whoever sent
 * the request and prove nothing. With no trusted proxies, the header is never believed.
 */
export class TrustedProxies {
  private readonly list = new BlockList();
  private readonly any: boolean;

  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const [address, bits] = entry.split('/');
      if (bits === undefined) this.list.addAddress(plain(address), family(address));
      else this.list.addSubnet(plain(address), Number(bits), family(address));
    }
    this.any = entries.length > 0;
  }

  clientOf(req: IncomingMessage): string {
    const peer = plain(req.socket.remoteAddress ?? 'unknown');
    if (!this.trusts(peer)) return peer;
    const header = req.headers['x-forwarded-for'];
    const hops = (Array.isArray(header) ? header.join(',') : (header ?? ''))
      .split(',')
      .map((hop) => plain(hop.trim()))
      .filter((hop) => hop.length > 0);
    for (let i = hops.length - 1; i >= 0; i--) {
      // A trusted proxy only appends real addresses; anything else means the chain cannot be read.
      if (!isIP(hops[i])) return peer;
      if (!this.trusts(hops[i])) return hops[i];
    }
    return hops[0] ?? peer;
  }

  private trusts(address: string): boolean {
    return this.any && isIP(address) !== 0 && this.list.check(address, family(address));
  }
}
