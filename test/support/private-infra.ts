import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { createServer } from 'node:net';
import { until } from './until.js';

const run = promisify(execFile);

/**
 * A free port below Linux's ephemeral range (32768+), for servers that the fault suite stops and
 * restarts on the same port: one in the ephemeral range could meanwhile be taken by an outgoing
 * connection, and the restart would fail to bind.
 */
async function stablePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port below the ephemeral range');
}

function pgBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  if (!versions.length) throw new Error('initdb not found under /usr/lib/postgresql');
  return join(root, versions[0], 'bin');
}

/**
 * A Postgres cluster of the test's own (initdb + pg_ctl on a spare port), so outages never touch
 * the shared server. As root, its commands run as the postgres user, which initdb requires.
 */
export class PrivatePostgres {
  readonly dir = mkdtempSync(join(tmpdir(), 'chat-faults-pg-'));
  private readonly data = join(this.dir, 'data');
  private readonly bin = pgBin();
  port = 0;

  private async pg(cmd: string, args: string[]): Promise<void> {
    const exe = join(this.bin, cmd);
    if (process.getuid?.() === 0) await run('runuser', ['-u', 'postgres', '--', exe, ...args], { timeout: 120_000 });
    else await run(exe, args, { timeout: 120_000 });
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  urlFor(db: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${db}`;
  }

  async init(): Promise<void> {
    this.port = await stablePort();
    chmodSync(this.dir, 0o755);
    if (process.getuid?.() === 0) {
      const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
      const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
      chownSync(this.dir, uid, gid);
    }
    await this.pg('initdb', ['-D', this.data, '--auth=trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C']);
    await this.start();
  }

  async start(): Promise<void> {
    const opts = `-c port=${this.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${this.dir} -c max_connections=200`;
    await this.pg('pg_ctl', ['-D', this.data, '-l', join(this.dir, 'pg.log'), '-w', '-t', '60', '-o', opts, 'start']);
    await until(() => this.query('postgres', 'SELECT 1').then(() => true), 30_000, 'private Postgres did not answer');
  }

  /** An immediate stop: like a crash, no clean shutdown of client sessions. */
  async stop(): Promise<void> {
    await this.pg('pg_ctl', ['-D', this.data, '-m', 'immediate', '-w', '-t', '30', 'stop']).catch(() => undefined);
  }

  /** Every process of the cluster, for freezing it with SIGSTOP (a hung database, not a refusing one). */
  private pids(): number[] {
    const postmaster = Number(readFileSync(join(this.data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const children = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return Number(readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ')[1]) === postmaster;
        } catch {
          return false;
        }
      })
      .map(Number);
    return [postmaster, ...children];
  }

  freeze(): void {
    for (const pid of this.pids()) process.kill(pid, 'SIGSTOP');
  }

  thaw(): void {
    for (const pid of this.pids()) process.kill(pid, 'SIGCONT');
  }

  async query<T = Record<string, unknown>>(db: string, sql: string, params: unknown[] = []): Promise<T[]> {
    const c = new pg.Client({ connectionString: this.urlFor(db), connectionTimeoutMillis: 3000 });
    await c.connect();
    try {
      return (await c.query(sql, params)).rows as T[];
    } finally {
      await c.end();
    }
  }

  async destroy(): Promise<void> {
    try {
      this.thaw();
    } catch {
      // not running
    }
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A Redis server of the test's own on a spare port; stop() and start() keep the port. */
export class PrivateRedis {
  private proc: ChildProcess | null = null;
  port = 0;

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await stablePort();
    this.proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    await until(() => this.ping(), 10_000, 'private Redis did not answer PING');
  }

  private async ping(): Promise<boolean> {
    const { stdout } = await run('redis-cli', ['-p', String(this.port), 'ping'], { timeout: 2000 });
    return stdout.trim() === 'PONG';
  }

  /** SIGKILL: an outage, not a clean shutdown. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
    this.proc = null;
  }
}
