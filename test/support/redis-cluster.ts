import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { sleep } from './clients.js';

const run = promisify(execFile);

/** Short, so that a killed master's replica takes over within a few seconds. */
export const NODE_TIMEOUT_MS = 2000;

export interface RedisNode {
  port: number;
  proc: ChildProcess;
  /** Kills the process (SIGKILL), as a crash would. */
  kill(): Promise<void>;
}

export interface LocalRedisCluster {
  nodes: RedisNode[];
  /** REDIS_CLUSTER_NODES for the service: every node as a seed. */
  seeds: string;
  /** A client of the test's own, on the cluster. */
  client(): Cluster;
  /** The node serving `key`'s slot as master now. */
  masterOf(key: string): Promise<RedisNode>;
  /** The live nodes that are replicas now. */
  replicas(): Promise<RedisNode[]>;
  /** Resolves once a node other than `former` serves `key`'s slot and the cluster says ok; throws after `timeoutMs`. */
  waitForFailover(key: string, former: RedisNode, timeoutMs?: number): Promise<RedisNode>;
  stop(): Promise<void>;
}

async function portFree(port: number): Promise<boolean> {
  const srv = createServer();
  // Not events.once(srv, 'listening'): that rejects on the 'error' a taken port emits.
  const ok = await new Promise<boolean>((resolve) => {
    srv.once('listening', () => resolve(true));
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1');
  });
  if (ok) {
    srv.close();
    await once(srv, 'close');
  }
  return ok;
}

/** `count` consecutive loopback ports whose cluster bus ports (+10000) are free too. */
async function sparePorts(count: number): Promise<number[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const ports = Array.from({ length: count }, (_, i) => base + i);
    const free = await Promise.all(ports.flatMap((p) => [portFree(p), portFree(p + 10_000)]));
    if (free.every(Boolean)) return ports;
  }
  throw new Error(`no ${count} spare loopback ports (and their bus ports) found`);
}

async function waitFor<T>(what: string, probe: () => Promise<T | null>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => null);
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** One node's answer to a command, or null when it does not answer within a second. */
async function ask(port: number, ...args: string[]): Promise<string | null> {
  const node = new Redis(port, '127.0.0.1', {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1000,
  });
  node.on('error', () => undefined);
  try {
    await node.connect();
    return String(await node.call(args[0], ...args.slice(1)));
  } catch {
    return null;
  } finally {
    node.disconnect();
  }
}

/**
 * A Redis Cluster of its own for one test: `masters` masters with one replica each, as
 * redis-server processes on spare loopback ports with their data in a temporary directory,
 * joined by `redis-cli --cluster create`. stop() kills them and removes the directory.
 */
export async function startRedisCluster(masters = 3): Promise<LocalRedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'chat-redis-cluster-'));
  const ports = await sparePorts(masters * 2);
  const nodes: RedisNode[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) {
      const proc = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          String(NODE_TIMEOUT_MS),
          // A replica takes over however long ago it last heard from its master.
          '--cluster-replica-validity-factor',
          '0',
          '--dir',
          dir,
          '--save',
          '',
          '--appendonly',
          'no',
          '--logfile',
          join(dir, `redis-${port}.log`),
        ],
        { stdio: 'ignore' },
      );
      const exited = once(proc, 'exit');
      nodes.push({
        port,
        proc,
        async kill() {
          if (proc.exitCode !== null || proc.signalCode !== null) return;
          proc.kill('SIGKILL');
          await exited;
        },
      });
    }
    await Promise.all(
      ports.map((p) => waitFor(`redis-server on ${p}`, async () => ((await ask(p, 'PING')) === 'PONG' ? true : null), 10_000)),
    );
    await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], {
      timeout: 30_000,
    });
    const clusterOk = async (p: number) => ((await ask(p, 'CLUSTER', 'INFO'))?.includes('cluster_state:ok') ? true : null);
    await Promise.all(ports.map((p) => waitFor(`cluster state ok on ${p}`, () => clusterOk(p), 20_000)));
    // A replica that never finished its first sync has nothing to take over with.
    const synced = async (p: number) => {
      const info = await ask(p, 'INFO', 'replication');
      return info?.includes('role:master') || info?.includes('master_link_status:up') ? true : null;
    };
    await Promise.all(ports.map((p) => waitFor(`replica ${p} in sync`, () => synced(p), 20_000)));
  } catch (err) {
    await stop();
    throw err;
  }

  const client = () =>
    new Cluster(
      ports.map((port) => ({ host: '127.0.0.1', port })),
      { clusterRetryStrategy: () => 200 },
    );
  const slotOf = async (key: string) => Number(await ask(ports[0], 'CLUSTER', 'KEYSLOT', key));
  const masterOf = async (key: string, alive = nodes): Promise<RedisNode | null> => {
    const slot = await slotOf(key);
    for (const node of alive) {
      const raw = await ask(node.port, 'CLUSTER', 'NODES');
      const myself = raw?.split('\n').find((line) => line.includes('myself'));
      if (!myself || !myself.includes('master') || myself.includes('fail')) continue;
      const ranges = myself.split(' ').slice(8);
      if (ranges.some((r) => inRange(slot, r))) return node;
    }
    return null;
  };
  return {
    nodes,
    seeds: ports.map((p) => `redis://127.0.0.1:${p}`).join(','),
    client,
    masterOf: async (key) => waitFor(`the master of ${key}`, () => masterOf(key), 5000),
    replicas: async () => {
      const roles = await Promise.all(
        nodes.map(async (node) => (await ask(node.port, 'CLUSTER', 'NODES'))?.split('\n').find((line) => line.includes('myself')) ?? ''),
      );
      return nodes.filter((_, i) => roles[i].includes('slave'));
    },
    waitForFailover: (key, former, timeoutMs = 15_000) =>
      waitFor(
        `a new master for ${key}`,
        async () => {
          const alive = nodes.filter((n) => n !== former);
          const next = await masterOf(key, alive);
          return next && (await ask(next.port, 'CLUSTER', 'INFO'))?.includes('cluster_state:ok') ? next : null;
        },
        timeoutMs,
      ),
    stop,
  };
}

/** Whether a CLUSTER NODES slot entry (`5461` or `0-5460`) holds `slot`. */
function inRange(slot: number, entry: string): boolean {
  if (entry.startsWith('[')) return false; // a slot being migrated or imported
  const [from, to = from] = entry.split('-').map(Number);
  return slot >= from && slot <= to;
}
