import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { TrustedProxies, isProxyEntry } from './trusted-proxies.js';

const request = (peer: string, forwardedFor?: string | string[]) =>
  ({
    socket: { remoteAddress: peer },
    headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor },
  }) as unknown as IncomingMessage;

describe('TrustedProxies', () => {
  it('never believes X-Forwarded-For when no proxy is trusted', () => {
    assert.equal(new TrustedProxies([]).clientOf(request('10.0.0.2', '1.2.3.4')), '10.0.0.2');
  });

  it('takes the right-most hop that is not a trusted proxy', () => {
    const proxies = new TrustedProxies(['10.0.0.0/8', '192.168.1.1']);
    assert.equal(proxies.clientOf(request('10.0.0.2', '1.2.3.4')), '1.2.3.4');
    assert.equal(proxies.clientOf(request('::ffff:10.0.0.2', 'spoofed, 5.6.7.8, 192.168.1.1')), '5.6.7.8');
    assert.equal(proxies.clientOf(request('10.0.0.2', ['9.9.9.9', '8.8.8.8'])), '8.8.8.8');
  });

  it('keeps the peer when it is not trusted, the header is missing, or a hop is not an address', () => {
    const proxies = new TrustedProxies(['10.0.0.0/8']);
    assert.equal(proxies.clientOf(request('1.2.3.4', '5.6.7.8')), '1.2.3.4');
    assert.equal(proxies.clientOf(request('10.0.0.2')), '10.0.0.2');
    assert.equal(proxies.clientOf(request('10.0.0.2', 'not-an-ip')), '10.0.0.2');
    assert.equal(proxies.clientOf(request('10.0.0.2', '10.0.0.9, 10.0.0.8')), '10.0.0.9', 'only proxies: the left-most');
  });

  it('knows an address or a subnet from a mistake', () => {
    for (const ok of ['10.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8']) assert.equal(isProxyEntry(ok), true, ok);
    for (const bad of ['10.0.0.0/33', 'fd00::/129', 'proxy.local', '10.0.0.0/8/1', '10.0.0.0/x'])
      assert.equal(isProxyEntry(bad), false, bad);
  });
});
