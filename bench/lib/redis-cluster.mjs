// --redis-cluster: a Redis Cluster of the bench's own for the service (3 masters, no replicas:
// the bench measures fan-out, not failover), as redis-server processes on free loopback ports
// with their data in a temporary directory, joined by `redis-cli --cluster create`; the same
// set-up as test/support/redis-cluster.ts. Registered, so the bench's cleanup stops it.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../scripts/free-port.mjs';

const run = promisify(execFile);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function cli(port, ...args) {
  try {
    return (await run('redis-cli', ['-p', String(port), ...args], { timeout: 5000 })).stdout;
  } catch {
    return '';
  }
}

async function waitFor(what, probe, timeoutMs) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await probe()) return;
    await sleep(100);
  }
  throw new Error(`redis cluster: ${what} not within ${timeoutMs} ms`);
}

/** Starts the cluster; returns { seeds (REDIS_CLUSTER_NODES), ports, del(key) }. */
export async function startRedisCluster(registry, masters = 3) {
  const dir = mkdtempSync(join(tmpdir(), 'chat-bench-redis-cluster-'));
  registry.onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const ports = [];
  for (let i = 0; i < masters; i++) {
    // The cluster bus gets a free port of its own (cluster-port), not the default port + 10000.
    const [port, busPort] = [await freePort(), await freePort()];
    ports.push(port);
    registry.track(
      spawn(
        'redis-server',
        [
          ...['--port', String(port), '--cluster-port', String(busPort), '--bind', '127.0.0.1'],
          ...['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`)],
          ...['--dir', dir, '--save', '', '--appendonly', 'no', '--logfile', join(dir, `redis-${port}.log`)],
        ],
        { stdio: 'ignore' },
      ),
    );
  }
  await Promise.all(ports.map((p) => waitFor(`redis-server on ${p}`, async () => (await cli(p, 'PING')).trim() === 'PONG', 10_000)));
  await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], {
    timeout: 30_000,
  });
  await Promise.all(
    ports.map((p) =>
      waitFor(`cluster state ok on ${p}`, async () => (await cli(p, 'CLUSTER', 'INFO')).includes('cluster_state:ok'), 20_000),
    ),
  );
  return {
    seeds: ports.map((p) => `redis://127.0.0.1:${p}`).join(','),
    ports,
    /** Deletes a key wherever its slot lives (-c follows the redirect). */
    del: (key) => run('redis-cli', ['-c', '-p', String(ports[0]), 'DEL', key], { timeout: 5000 }),
  };
}
