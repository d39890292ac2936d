// Starting and stopping what the bench measures: the service (node dist/main.js) and the
// baselines, each as its own process on 127.0.0.1, plus the bench database. Everything started
// here is registered, so one cleanup() stops it all (also on Ctrl-C and on errors).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { freePort } from '../../scripts/free-port.mjs';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const GC_HOOK = pathToFileURL(fileURLToPath(new URL('./gc-hook.mjs', import.meta.url))).href;
const BASELINES = {
  io: fileURLToPath(new URL('../baselines/socketio-baseline.mjs', import.meta.url)),
  ws: fileURLToPath(new URL('../baselines/ws-baseline.mjs', import.meta.url)),
};
// BENCH_PG_SERVER points the bench at another server (say, a private one with pg_stat_statements
// loaded, for a per-statement breakdown); the machine's shared server is the default.
const PG_SERVER = process.env.BENCH_PG_SERVER ?? 'postgres://postgres@127.0.0.1:5432';
export const PG_ADMIN = `${PG_SERVER}/postgres`;
export const REDIS_URL = 'redis://127.0.0.1:6379';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Every child process and resource of this run, stopped once by cleanup(). */
export class Registry {
  constructor() {
    this.procs = new Set();
    this.finalizers = [];
    this.cleaned = null;
  }

  get stopping() {
    return this.cleaned !== null;
  }

  /** Registers a child; once cleanup has begun, a late child is stopped at once. */
  track(proc) {
    if (this.stopping) {
      proc.kill('SIGKILL');
      throw new Error('the bench is stopping: no new processes');
    }
    this.procs.add(proc);
    proc.once('exit', () => this.procs.delete(proc));
    return proc;
  }

  onCleanup(fn) {
    this.finalizers.push(fn);
  }

  cleanup() {
    this.cleaned ??= (async () => {
      const alive = [...this.procs].filter((p) => p.exitCode === null && p.signalCode === null);
      for (const p of alive) p.kill('SIGTERM');
      await Promise.race([Promise.all(alive.map((p) => once(p, 'exit'))), sleep(6000)]);
      for (const p of alive) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      for (const fn of this.finalizers.reverse()) {
        try {
          await fn();
        } catch (err) {
          process.stderr.write(`cleanup: ${err.message}\n`);
        }
      }
    })();
    return this.cleaned;
  }
}

export async function createDatabase(registry) {
  const name = `bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN, connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  registry.onCleanup(() => dropDatabase(name));
  return { name, url: `${PG_SERVER}/${name}` };
}

async function dropDatabase(name) {
  const admin = new pg.Client({ connectionString: PG_ADMIN, connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

export async function serverVersions() {
  const admin = new pg.Client({ connectionString: PG_ADMIN, connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    const { rows } = await admin.query('SHOW server_version');
    return { postgres: rows[0].server_version };
  } finally {
    await admin.end();
  }
}

/** The last lines a process printed, for error messages. */
function capture(proc) {
  const lines = [];
  for (const s of [proc.stdout, proc.stderr]) {
    s?.setEncoding('utf8');
    s?.on('data', (chunk) => {
      for (const line of chunk.split('\n')) if (line) lines.push(line.slice(0, 500));
      if (lines.length > 40) lines.splice(0, lines.length - 40);
    });
  }
  return () => lines.join('\n');
}

async function waitReady(inst, path, timeoutMs = 60_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (inst.proc.exitCode !== null || inst.proc.signalCode !== null)
      throw new Error(`${inst.name} exited during start:\n${inst.output()}`);
    try {
      if ((await fetch(`${inst.url}${path}`, { signal: AbortSignal.timeout(1500) })).status === 200) return;
    } catch {
      // not up yet
    }
    await sleep(100);
  }
  throw new Error(`${inst.name} not ready within ${timeoutMs} ms:\n${inst.output()}`);
}

/** A restartable process on a fixed port. */
class Instance {
  constructor(registry, { name, port, args, env, readyPath }) {
    Object.assign(this, { registry, name, port, args, env, readyPath, url: `http://127.0.0.1:${port}` });
  }

  async start() {
    if (this.registry.stopping) throw new Error('the bench is stopping: no new processes');
    this.proc = this.registry.track(spawn(process.execPath, this.args, { cwd: ROOT, env: this.env, stdio: ['ignore', 'pipe', 'pipe'] }));
    this.output = capture(this.proc);
    await waitReady(this, this.readyPath);
    return this;
  }

  get pid() {
    return this.proc?.pid;
  }

  get alive() {
    return this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** A fresh process on the same port: SIGTERM (SIGKILL after 12 s), then start. */
  async restart() {
    if (this.alive) {
      const exited = once(this.proc, 'exit');
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), 12_000);
      await exited;
      clearTimeout(timer);
    }
    return this.start();
  }

  /** SIGKILL: the instance is lost at once, as in a crash. */
  async kill() {
    if (!this.alive) return;
    const exited = once(this.proc, 'exit');
    this.proc.kill('SIGKILL');
    await exited;
  }
}

export const SERVICE_RATES = {
  // The service's configuration caps: RATE_LIMIT_PER_SECOND ≤ 100000, RATE_LIMIT_USER_MESSAGES ≤ 10000000.
  RATE_LIMIT_PER_SECOND: '100000',
  RATE_LIMIT_BURST: '1000000',
  RATE_LIMIT_USER_MESSAGES: '10000000',
  RATE_LIMIT_DISCONNECT_AFTER: '1000000',
  // Durable sends create their rooms by sending: about 20 new rooms per sender with 4 workers, more with fewer clients per worker.
  ROOM_CREATE_LIMIT: '10000000',
  MAX_CONNECTIONS_PER_USER: '100000',
  // Every bench client connects from 127.0.0.1, thousands at once.
  HANDSHAKE_BURST: '1000000',
  HANDSHAKE_RATE_PER_SECOND: '100000',
  MAX_UNAUTHENTICATED_SESSIONS: '100000',
  MAX_BUFFERED_BYTES: String(256 * 1024 * 1024),
  DB_POOL_SIZE: '20',
};

/**
 * `redisCluster` (from startRedisCluster): the instances use it (REDIS_CLUSTER_NODES) instead of
 * the local Redis server.
 */
export async function startServices(registry, { count, databaseUrl, prefix, secret, profileDir, redisCluster = null }) {
  const gcDir = `${tmpdir()}/chat-bench-gc-${randomBytes(4).toString('hex')}`;
  mkdirSync(gcDir, { recursive: true });
  registry.onCleanup(() => rmSync(gcDir, { recursive: true, force: true }));
  // A cluster of the bench's own goes with its data; the shared server keeps only what is not the bench's.
  if (!redisCluster) registry.onCleanup(() => execFileSync('redis-cli', ['-u', REDIS_URL, 'DEL', `${prefix}.events`], { stdio: 'ignore' }));
  const instances = [];
  for (let i = 0; i < count; i++) {
    const port = await freePort();
    const env = {
      ...process.env,
      NODE_ENV: 'test',
      LOG_LEVEL: 'warn',
      PORT: String(port),
      DATABASE_URL: databaseUrl,
      ...(redisCluster ? { REDIS_CLUSTER_NODES: redisCluster.seeds } : { REDIS_URL }),
      REDIS_PREFIX: prefix,
      // The outbox relay's stream: the bench's own, removed at the end (see startServices).
      EVENTS_STREAM: `${prefix}.events`,
      JWT_SECRET: secret,
      BENCH_GC_DIR: gcDir,
      ...SERVICE_RATES,
    };
    // The service refuses both at once; the caller's environment may carry REDIS_URL.
    if (redisCluster) delete env.REDIS_URL;
    const inst = new Instance(registry, {
      name: `service${i + 1}`,
      port,
      // --profile: V8 CPU profiles of each instance, written when it stops (open in Chrome DevTools).
      args: ['--expose-gc', ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), '--import', GC_HOOK, 'dist/main.js'],
      env,
      readyPath: '/health/ready',
    });
    inst.gcDir = gcDir;
    instances.push(inst);
  }
  // Started together, as replicas are; migrations take turns through the advisory lock.
  await Promise.all(instances.map((i) => i.start()));
  return instances;
}

export async function startBaselines(registry, { kind, count, prefix }) {
  const instances = [];
  for (let i = 0; i < count; i++) {
    const port = await freePort();
    const env = { ...process.env, PORT: String(port), REDIS_URL, REDIS_PREFIX: prefix };
    instances.push(
      new Instance(registry, { name: `${kind}-baseline${i + 1}`, port, args: ['--expose-gc', BASELINES[kind]], env, readyPath: '/health' }),
    );
  }
  await Promise.all(instances.map((i) => i.start()));
  return instances;
}

/** Memory after a forced GC: baselines through GET /stats, the service through the bench's SIGUSR2 hook. */
export async function memoryAfterGc(inst, kind) {
  if (kind === 'baseline') {
    const res = await fetch(`${inst.url}/stats`, { signal: AbortSignal.timeout(10_000) });
    return (await res.json()).memory;
  }
  const file = `${inst.gcDir}/${inst.pid}.json`;
  rmSync(file, { force: true });
  process.kill(inst.pid, 'SIGUSR2');
  const end = Date.now() + 10_000;
  while (Date.now() < end) {
    try {
      statSync(file);
      const report = JSON.parse(readFileSync(file, 'utf8'));
      return { ...report.memory, gcMs: report.gcMs };
    } catch {
      await sleep(20);
    }
  }
  throw new Error(`${inst.name}: no GC report within 10 s`);
}

/** GET /metrics of a service instance, as text. */
export async function scrapeMetrics(inst) {
  return (await fetch(`${inst.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
}

/** The first sample of `name` in Prometheus text (its labels, if any, ignored), or null. */
export function metricValue(text, name) {
  const m = text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm'));
  return m ? Number(m[1]) : null;
}

/** The service's own view, as-is (no forced GC): resident memory and heap from /metrics. */
export async function serviceMetrics(inst) {
  const text = await scrapeMetrics(inst);
  const pick = (name) => metricValue(text, name);
  return {
    rss: pick('process_resident_memory_bytes'),
    heapUsed: pick('nodejs_heap_size_used_bytes'),
    cpuUser: pick('process_cpu_user_seconds_total'),
    cpuSystem: pick('process_cpu_system_seconds_total'),
  };
}
