// The compose stack of `npm run test:compose`: a project of its own (name, published port,
// subnet, image tag and secrets, none shared with another stack on the host), and the docker
// and compose commands the test runs against it, each bounded in time.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../free-port.mjs';

/**
 * Runs `cmd args`, resolves `{ code, out }` (stdout and stderr together); never rejects on a
 * non-zero exit, only when the time is up (the process is killed then).
 */
export function run(cmd, args, { env = process.env, cwd, timeoutMs = 60_000, log } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const take = (chunk) => {
      out += chunk;
      log?.write(chunk);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')}: no exit within ${timeoutMs} ms\n${out.slice(-2000)}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/** Like run(), but a non-zero exit is an error that carries the output's end. */
export async function mustRun(cmd, args, options) {
  const r = await run(cmd, args, options);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.code}:\n${r.out.slice(-3000)}`);
  return r.out;
}

const ipv4 = (a) => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
function overlaps(cidrA, cidrB) {
  const range = (cidr) => {
    const [addr, bits = '32'] = cidr.split('/');
    const size = 2 ** (32 - Number(bits));
    const start = Math.floor(ipv4(addr) / size) * size;
    return [start, start + size - 1];
  };
  const [a0, a1] = range(cidrA);
  const [b0, b1] = range(cidrB);
  return a0 <= b1 && b0 <= a1;
}

/** A /24 in 172.31.0.0/16 that no Docker network and no host interface or route uses. */
async function freeSubnet() {
  const taken = [];
  const ids = (await mustRun('docker', ['network', 'ls', '-q'])).split('\n').filter(Boolean);
  if (ids.length > 0) {
    const out = await mustRun('docker', ['network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Subnet}} {{end}}', ...ids]);
    taken.push(...out.split(/\s+/).filter((s) => /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(s)));
  }
  const routes = await run('ip', ['-4', 'route', 'show'], { timeoutMs: 5000 }).catch(() => ({ out: '' }));
  taken.push(...[...routes.out.matchAll(/^(\d+\.\d+\.\d+\.\d+(?:\/\d+)?)\s/gm)].map((m) => m[1]));
  // Random, so that two runs at once rarely race for the same one; 240 is the compose file's default.
  const start = Math.floor(Math.random() * 240);
  for (let i = 0; i < 240; i++) {
    const candidate = `172.31.${(start + i) % 240}.0/24`;
    if (!taken.some((t) => overlaps(t, candidate))) return candidate;
  }
  throw new Error(`no free /24 in 172.31.0.0/16 (taken: ${taken.join(', ')})`);
}

/**
 * How to run compose here: COMPOSE_CMD if set ("docker compose", "docker-compose", a path), else
 * docker compose v2, else the compose-lab beside the project (COMPOSE_LAB, default
 * ../shared/compose-lab), else docker-compose.
 */
async function composeCommand(root) {
  if (process.env.COMPOSE_CMD) return process.env.COMPOSE_CMD.split(' ').filter(Boolean);
  if ((await run('docker', ['compose', 'version'], { timeoutMs: 10_000 }).catch(() => ({ code: 1 }))).code === 0)
    return ['docker', 'compose'];
  const lab = join(process.env.COMPOSE_LAB ?? join(root, '..', 'shared', 'compose-lab'), 'compose.sh');
  if (existsSync(lab)) return ['bash', lab];
  return ['docker-compose'];
}

/** Everything the test knows of its stack; `compose(args)` runs compose for this project only. */
export async function createStack(root) {
  const id = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const project = `chatcompose${id}`;
  const secret = (n) => randomBytes(n).toString('hex');
  const settings = {
    COMPOSE_PROJECT_NAME: project,
    CHAT_PORT: String(await freePort()),
    CHAT_SUBNET: await freeSubnet(),
    CHAT_IMAGE: `chat-service:compose-test-${id}`,
    POSTGRES_PASSWORD: secret(16),
    JWT_SECRET: secret(32),
    LB_COOKIE_KEY: secret(16),
    API_KEYS: secret(24),
    // The placement of each client is read from the replicas' `connection opened` lines (info).
    LOG_LEVEL: 'info',
    ALLOWED_ORIGINS: '',
  };
  const env = { ...process.env, ...settings };
  const command = await composeCommand(root);
  const logPath = join(tmpdir(), `${project}.log`);
  const log = createWriteStream(logPath);
  const compose = (args, timeoutMs = 120_000) => {
    log.write(`\n$ ${command.join(' ')} ${args.join(' ')}\n`);
    return mustRun(command[0], [...command.slice(1), ...args], { env, cwd: root, timeoutMs, log });
  };

  /** Containers of one service, oldest first, with their docker inspect state. */
  const containers = async (service) => {
    const ids = (
      await mustRun('docker', [
        'ps',
        '-aq',
        '--filter',
        `label=com.docker.compose.project=${project}`,
        '--filter',
        `label=com.docker.compose.service=${service}`,
      ])
    )
      .split('\n')
      .filter(Boolean);
    if (ids.length === 0) return [];
    const all = JSON.parse(await mustRun('docker', ['inspect', ...ids]));
    return all
      .map((c) => ({
        id: c.Id,
        name: c.Name.replace(/^\//, ''),
        number: Number(c.Config.Labels['com.docker.compose.container-number']),
        status: c.State.Status,
        exitCode: c.State.ExitCode,
        health: c.State.Health?.Status ?? null,
        restarts: c.RestartCount,
        startedAt: c.State.StartedAt,
        healthLog: (c.State.Health?.Log ?? []).slice(-3),
      }))
      .sort((a, b) => a.number - b.number);
  };

  const logsOf = async (container) => (await run('docker', ['logs', container], { timeoutMs: 20_000 })).out;

  /** Which chat container held each connection id, from their `connection opened` lines (exited ones too). */
  const placement = async (connectionIds) => {
    const chats = await containers('chat');
    const logs = await Promise.all(chats.map(async (c) => [c.name, await logsOf(c.id)]));
    const where = new Map();
    for (const cid of connectionIds) {
      const hit = logs.find(([, text]) => text.split('\n').some((l) => l.includes('connection opened') && l.includes(`"${cid}"`)));
      where.set(cid, hit?.[0] ?? null);
    }
    return where;
  };

  return {
    project,
    settings,
    command,
    logPath,
    compose,
    containers,
    logsOf,
    placement,
    url: `http://127.0.0.1:${settings.CHAT_PORT}`,
  };
}
