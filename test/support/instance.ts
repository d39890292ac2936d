import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_JWT_SECRET } from './tokens.js';
import { until } from './until.js';

export const PROJECT_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
export const SHARED_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as { port: number };
  srv.close();
  await once(srv, 'close');
  return port;
}

/** A Redis key/channel prefix no other test run shares. */
export function redisPrefix(): string {
  return `chat-test-${randomBytes(4).toString('hex')}`;
}

export interface Instance {
  name: string;
  url: string;
  port: number;
  proc: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

/**
 * Runs the built service (`node dist/main.js`) as its own process, as production does.
 * `env` values of undefined remove a variable.
 */
/** `entry`: the script to run instead of dist/main.js (a launcher), in `cwd` instead of the project root. */
export async function startInstance(
  name: string,
  env: Record<string, string | undefined>,
  { waitReady = true, entry = 'dist/main.js', cwd = PROJECT_ROOT } = {},
): Promise<Instance> {
  const port = await freePort();
  const fullEnv: Record<string, string> = {};
  const merged = {
    ...process.env,
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    JWT_SECRET: TEST_JWT_SECRET,
    PORT: String(port),
    ...env,
  };
  for (const [k, v] of Object.entries(merged)) if (v !== undefined) fullEnv[k] = v;
  const proc = spawn(process.execPath, [join(PROJECT_ROOT, entry)], { cwd, env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const inst: Instance = {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    proc,
    output: () => out,
    exited,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
  if (waitReady) await waitUntilReady(inst);
  return inst;
}

/**
 * Waits until the instance has noticed that Redis is gone (readiness 503 with redis down): killing
 * Redis returns before each instance's client has seen its connection close.
 */
export async function waitUntilRedisLost(inst: Instance, timeoutMs = 10_000): Promise<void> {
  await until(
    async () => {
      const res = await fetch(`${inst.url}/health/ready`, { signal: AbortSignal.timeout(2000) });
      const report = (await res.json()) as { error?: { redis?: unknown } };
      return res.status === 503 && report.error?.redis !== undefined;
    },
    timeoutMs,
    `${inst.name} did not report Redis down (readiness 503)`,
    20,
  );
}

export async function waitUntilReady(inst: Instance, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let exit: { code: number | null } | null = null;
  void inst.exited.then((e) => (exit = e));
  while (Date.now() < end) {
    if (exit) throw new Error(`${inst.name} exited during start:\n${inst.output()}`);
    try {
      const res = await fetch(`${inst.url}/health/ready`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`${inst.name} not ready within ${timeoutMs} ms:\n${inst.output()}`);
}

/** The event stream of a test deployment (EVENTS_STREAM's default, under its Redis prefix), so tests never share one. */
export function eventsStreamOf(prefix: string): string {
  return `${prefix}.events`;
}

/** Environment for an instance on a test database, with Redis fan-out under its own prefix. */
export function clusterEnv(databaseUrl: string, prefix: string): Record<string, string> {
  return { DATABASE_URL: databaseUrl, REDIS_URL: SHARED_REDIS_URL, REDIS_PREFIX: prefix };
}

/** For tests that load the service on purpose (floods, fault traffic): rate limits far above what they send. */
export const UNLIMITED_RATES: Record<string, string> = {
  RATE_LIMIT_PER_SECOND: '100000',
  RATE_LIMIT_BURST: '100000',
  RATE_LIMIT_USER_MESSAGES: '10000000',
};
