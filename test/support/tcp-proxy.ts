import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';

/**
 * A TCP forwarder in front of one instance, so a test can take a client's connection away without
 * touching the instance: cut() destroys every forwarded connection and refuses new ones (the
 * client sees its transport die and keeps retrying) until restore().
 */
export interface TcpProxy {
  url: string;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let refusing = false;
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    // A reset on one side is how a cut looks to the other: nothing to report.
    s.on('error', () => s.destroy());
  };
  const server = createServer((client) => {
    track(client);
    if (refusing) return client.destroy();
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    track(upstream);
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const destroyAll = () => {
    for (const s of sockets) s.destroy();
  };
  return {
    url: `http://127.0.0.1:${port}`,
    cut() {
      refusing = true;
      destroyAll();
    },
    restore() {
      refusing = false;
    },
    async close() {
      refusing = true;
      destroyAll();
      server.close();
      await once(server, 'close');
    },
  };
}
