#!/usr/bin/env node
// `npm run cluster`: the production topology on one machine. N replicas of the built service
// (`node dist/main.js`) behind HAProxy from Debian's package, configured by the same
// deploy/haproxy/haproxy.cfg as docker compose (only the addresses differ, passed as environment),
// against the local Postgres and Redis. Prints the URL; Ctrl-C stops everything.
//
//   npm run cluster -- [--replicas 1-3] [--port 8080]
// Environment: DATABASE_URL (default: database chat_cluster on 127.0.0.1:5432, created if missing),
// REDIS_URL (default redis://127.0.0.1:6379), and any variable of the service's configuration.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { devSignInDefault } from './dev-sign-in.mjs';
import { freePort } from './free-port.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HAPROXY_CFG = `${ROOT}deploy/haproxy/haproxy.cfg`;
/** The HAProxy config names three fixed servers; unused ones point at a closed port and stay down. */
const MAX_REPLICAS = 3;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function ensureDatabase(url) {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount === 0) await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
  } finally {
    await client.end();
  }
}

async function waitFor(url, what, proc, timeoutMs = 60_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (proc.exitCode !== null) throw new Error(`${what} exited with code ${proc.exitCode}`);
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(1000) })).status === 200) return;
    } catch {
      // not up yet
    }
    await sleep(150);
  }
  throw new Error(`${what} not ready within ${timeoutMs} ms (${url})`);
}

/**
 * Starts `replicas` instances and the load balancer. `env` is added to every instance's
 * environment; `output` receives each process's output lines, prefixed with its name.
 */
export async function startLocalCluster({
  replicas = 3,
  port,
  databaseUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/chat_cluster',
  redisUrl = process.env.REDIS_URL || 'redis://127.0.0.1:6379',
  env = {},
  output = () => undefined,
} = {}) {
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > MAX_REPLICAS) throw new Error(`--replicas must be 1-${MAX_REPLICAS}`);
  await ensureDatabase(databaseUrl);
  const lbPort = port ?? (await freePort());
  const procs = [];
  const pipe = (name, proc) => {
    for (const stream of [proc.stdout, proc.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk) => {
        for (const line of chunk.split('\n')) if (line) output(name, line);
      });
    }
  };

  const stopAll = async () => {
    const alive = procs.filter((p) => p.exitCode === null && p.signalCode === null);
    for (const p of alive) p.kill('SIGTERM');
    await Promise.race([Promise.all(alive.map((p) => once(p, 'exit'))), sleep(12_000)]);
    for (const p of alive) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  };
  try {
    return await launch();
  } catch (err) {
    await stopAll();
    throw err;
  }

  async function launch() {
    const instances = [];
    for (let i = 1; i <= replicas; i++) {
      const instancePort = await freePort();
      const name = `chat${i}`;
      const startInstance = () => {
        const proc = spawn(process.execPath, ['dist/main.js'], {
          cwd: ROOT,
          env: {
            ...process.env,
            DATABASE_URL: databaseUrl,
            REDIS_URL: redisUrl,
            REDIS_PREFIX: 'chat-cluster',
            ...env,
            PORT: String(instancePort),
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        pipe(name, proc);
        procs.push(proc);
        return proc;
      };
      const instance = { name, port: instancePort, url: `http://127.0.0.1:${instancePort}`, proc: startInstance() };
      instance.restart = () => (instance.proc = startInstance());
      instances.push(instance);
    }
    await Promise.all(instances.map((i) => waitFor(`${i.url}/health/ready`, i.name, i.proc)));

    const addresses = {};
    for (let i = 1; i <= MAX_REPLICAS; i++)
      addresses[`CHAT${i}_ADDR`] = i <= replicas ? `127.0.0.1:${instances[i - 1].port}` : '127.0.0.1:1';
    const lb = spawn('haproxy', ['-db', '-f', HAPROXY_CFG], {
      // LB_STATIC turns on the config's fixed servers; its DNS slots (docker compose's) stay empty here.
      env: {
        ...process.env,
        ...addresses,
        LB_STATIC: 'enabled',
        LB_BIND: `127.0.0.1:${lbPort}`,
        LB_COOKIE_KEY: randomBytes(16).toString('hex'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    lb.once('error', (err) => output('haproxy', `could not start haproxy (apt-get install haproxy): ${err.message}`));
    pipe('haproxy', lb);
    procs.push(lb);
    const url = `http://127.0.0.1:${lbPort}`;
    await waitFor(`${url}/health/ready`, 'haproxy', lb, 20_000);

    return { url, instances, lb, stop: stopAll };
  }
}

async function main() {
  const args = process.argv.slice(2);
  const option = (name, fallback) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  const cluster = await startLocalCluster({
    replicas: option('replicas', 3),
    port: option('port', 8080),
    env: { DEV_SIGN_IN: process.env.DEV_SIGN_IN ?? devSignInDefault(process.env) },
    output: (name, line) => process.stdout.write(`${name.padEnd(8)} ${line}\n`),
  });
  process.stdout.write(
    `\nchat cluster: ${cluster.instances.length} replicas behind HAProxy at ${cluster.url}\n` +
      `  socket.io: io('${cluster.url}', { auth: { token } })   raw WebSocket: ${cluster.url.replace('http', 'ws')}/ws?access_token=…\n` +
      `  replicas: ${cluster.instances.map((i) => i.url).join(', ')}\n  Ctrl-C stops everything.\n\n`,
  );
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('stopping…\n');
    await cluster.stop();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err) => {
    process.stderr.write(`${err.stack ?? err}\n`);
    process.exit(1);
  });
}
