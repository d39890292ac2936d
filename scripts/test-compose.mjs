#!/usr/bin/env node
// `npm run test:compose`: the project's own docker-compose.yml on a real Docker engine, checked
// from outside through the load balancer's published port only. Phases, each timed:
//   1. up --build with 3 replicas; /health/ready through the balancer; migrate ran once and
//      exited 0; every replica healthy (docker inspect); the balancer reaches all 3;
//   2. a socket.io client on polling, one on websocket and a raw ws client (two of each), spread
//      over the replicas, exchange messages in one room: every client sees every seq once;
//   3. docker kill of a replica that holds clients: they reconnect through the balancer and
//      recover what others sent meanwhile with room.join { sinceSeq }, nothing twice;
//   4. docker stop of another (graceful drain) while every client keeps sending: every acked
//      message is in the history afterwards, and the replica exits 0;
//   5. --scale chat=5: the balancer finds the new replicas through Docker's DNS; the exchange
//      again, over all 5;
//   6. down -v --remove-orphans, always (also on failure, a signal or the time budget).
// Needs docker and compose (v2, or the compose-lab beside the project: ../shared/compose-lab, or
// COMPOSE_LAB; COMPOSE_CMD overrides). The stack gets its own project name, port, subnet, image
// tag and secrets, so it runs beside any other stack.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { KINDS, ResumingClient, sleep, tokenFor } from './compose-test/clients.mjs';
import { createStack, run } from './compose-test/stack.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The whole run, teardown included, stays under 15 minutes. */
const BUDGET_MS = 15 * 60_000;
const TEARDOWN_RESERVE_MS = 90_000;

const say = (line) => process.stdout.write(`[test:compose] ${line}\n`);
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

class CheckFailed extends Error {}
function check(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

async function until(what, timeoutMs, probe) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const result = await probe();
    if (result) return result;
    if (Date.now() > end) throw new CheckFailed(`${what}: not within ${seconds(timeoutMs)}`);
    await sleep(500);
  }
}

const timings = [];
async function phase(name, fn) {
  say(`== ${name}`);
  const t0 = Date.now();
  try {
    return await fn();
  } finally {
    timings.push({ name, ms: Date.now() - t0 });
    say(`   ${name}: ${seconds(Date.now() - t0)}`);
  }
}

const stack = await createStack(ROOT);
const { settings, url } = stack;
const clients = [];
let failed = false;

say(`compose: ${stack.command.join(' ')}; project ${stack.project}; ${url}; subnet ${settings.CHAT_SUBNET}; image ${settings.CHAT_IMAGE}`);
say(`compose output: ${stack.logPath}`);

let teardown = null;
function tearDown() {
  teardown ??= (async () => {
    for (const c of clients) c.close();
    await phase('down -v --remove-orphans', async () => {
      await stack.compose(['down', '-v', '--remove-orphans', '-t', '5'], 120_000).catch((err) => {
        failed = true;
        say(`down failed: ${err.message}`);
      });
      // --no-prune keeps the build's intermediate layers: the next run's build is cached.
      await run('docker', ['rmi', '--no-prune', settings.CHAT_IMAGE], { timeoutMs: 30_000 }).catch(() => undefined);
    });
  })();
  return teardown;
}

async function finish(code) {
  await tearDown();
  if (code === 0 && failed) code = 1;
  say('timings:');
  for (const t of timings) say(`  ${t.name.padEnd(62)} ${seconds(t.ms).padStart(8)}`);
  say(`  ${'total'.padEnd(62)} ${seconds(Date.now() - startedAt).padStart(8)}`);
  say(code === 0 ? 'PASSED' : 'FAILED');
  process.exit(code);
}

const startedAt = Date.now();
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    say(`${signal}: tearing the stack down`);
    void finish(130);
  });
}
const watchdog = setTimeout(() => {
  say(`over the time budget (${seconds(BUDGET_MS - TEARDOWN_RESERVE_MS)} before teardown)`);
  void diagnose().finally(() => finish(1));
}, BUDGET_MS - TEARDOWN_RESERVE_MS);

/** What the stack looked like when a check failed. */
async function diagnose() {
  const ps = await run('docker', ['ps', '-a', '--filter', `label=com.docker.compose.project=${stack.project}`], {
    timeoutMs: 10_000,
  }).catch(() => null);
  if (ps) say(`docker ps -a:\n${ps.out}`);
  for (const service of ['lb', 'migrate', 'chat']) {
    for (const c of await stack.containers(service).catch(() => [])) {
      const lines = (await stack.logsOf(c.id).catch(() => '')).split('\n');
      const count = (text) => lines.filter((l) => l.includes(text)).length;
      const starts = `${count('chat service listening')} started, ${count('failed to start')} failed to start`;
      say(`--- ${c.name} (${c.status}, health ${c.health}, exit ${c.exitCode}, ${c.restarts} restarts, ${starts}); health checks:`);
      for (const h of c.healthLog) say(`    ${h.Start} exit ${h.ExitCode} ${h.Output.trim().slice(0, 200)}`);
      say(`  last lines:\n${lines.slice(-15).join('\n')}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------

const runningChats = async () => (await stack.containers('chat')).filter((c) => c.status === 'running');

/** Waits until `n` chat containers run and docker reports each healthy. */
async function replicasHealthy(n, timeoutMs) {
  return until(`${n} chat replicas healthy`, timeoutMs, async () => {
    const running = await runningChats();
    return running.length === n && running.every((c) => c.health === 'healthy') ? running : null;
  });
}

/** One raw ws connection through the balancer: its connectionId, then closed. */
async function probeConnection(token) {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`, { headers: { Authorization: `Bearer ${token}` } });
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no session within 5 s')), 5000);
      ws.on('message', (raw) => {
        const frame = JSON.parse(raw.toString());
        if (frame.event === 'session') {
          clearTimeout(timer);
          resolve(frame.data.connectionId);
        }
      });
      ws.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  } finally {
    ws.terminate();
  }
}

/**
 * Waits until new connections through the balancer reach every running replica: HAProxy's
 * server-template slots are filled from Docker's DNS and a server joins after two checks.
 */
async function balancerReachesAll(timeoutMs) {
  const token = await tokenFor('lb-probe', settings.JWT_SECRET);
  const reached = new Set();
  return until('the balancer reaches every replica', timeoutMs, async () => {
    const running = (await runningChats()).map((c) => c.name);
    const ids = [];
    for (let i = 0; i < running.length; i++) ids.push(await probeConnection(token).catch(() => null));
    for (const name of (await stack.placement(ids.filter(Boolean))).values()) if (name) reached.add(name);
    return running.every((n) => reached.has(n)) ? running : null;
  });
}

/** Where each client's current connection is, once every one of them shows in a replica's log. */
async function placeClients(list) {
  return until('every connection in a replica log', 10_000, async () => {
    const where = await stack.placement(list.map((c) => c.connectionIds.at(-1)));
    const byClient = new Map(list.map((c) => [c, where.get(c.connectionIds.at(-1))]));
    return [...byClient.values()].every(Boolean) ? byClient : null;
  });
}

async function connectClients(count, roomId, users) {
  const list = [];
  for (let i = 0; i < count; i++) {
    const client = new ResumingClient({ kind: KINDS[i % KINDS.length], user: `${users}-${i}`, url, secret: settings.JWT_SECRET, roomId });
    clients.push(client);
    list.push(client);
    await client.start();
    // One after the other, so that leastconn sees each connection before the next one comes.
    await client.waitSessions(1, 20_000);
  }
  return list;
}

function describePlacement(byClient) {
  return [...byClient].map(([c, name]) => `${c.name}→${name}`).join(', ');
}

/** Sends that storage did not confirm in time, retried as the contract says (same clientMsgId). */
const retried = { count: 0 };

/**
 * message.send as a client should make it: UNAVAILABLE (storage slow or away; the outcome is
 * unknown) and a missing reply are retried with the same clientMsgId, which stores it once.
 */
async function sendReliably(client, data, attempts = 5) {
  for (let i = 1; ; i++) {
    const reply = await client
      .request('message.send', data)
      .catch((err) => ({ ok: false, error: { code: 'NO_REPLY', message: err.message } }));
    if (reply.ok || i === attempts || !['UNAVAILABLE', 'NO_REPLY'].includes(reply.error.code)) return reply;
    retried.count++;
    await sleep(1000);
  }
}

/** Every client sends one message; every client then has each of them exactly once, live. */
async function exchange(list, roomId) {
  const before = Math.max(...list.map((c) => c.upTo));
  const acks = await Promise.all(
    list.map((c, i) => sendReliably(c, { roomId, body: `hello from ${c.name} #${i}`, clientMsgId: `x-${c.user}-${before}` })),
  );
  check(
    acks.every((a) => a.ok),
    `every send acked: ${JSON.stringify(acks.filter((a) => !a.ok))}`,
  );
  const seqs = acks.map((a) => a.data.seq).sort((a, b) => a - b);
  check(
    seqs.every((s, i) => s === before + i + 1),
    `seqs ${before + 1}..${before + list.length} given out once each: ${seqs}`,
  );
  const last = before + list.length;
  await Promise.all(list.map((c) => c.waitUpTo(last, 15_000)));
  // Time for a late duplicate to show up.
  await sleep(1000);
  for (const c of list) {
    for (let seq = before + 1; seq <= last; seq++) {
      const got = c.arrivals.get(seq) ?? [];
      check(got.length === 1 && got[0] === 'live', `${c.name}: seq ${seq} arrived once, live (arrivals: ${got.join(',') || 'none'})`);
    }
  }
  say(
    `   ${list.length} clients × ${list.length} messages (seq ${before + 1}..${last}): each seen exactly once, live (${retried.count} sends retried so far)`,
  );
  return last;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  await phase('up -d --build --scale chat=3', () => stack.compose(['up', '-d', '--build', '--scale', 'chat=3'], 10 * 60_000));

  await phase('ready through the balancer; migrate once; 3 replicas healthy', async () => {
    await until('/health/ready 200 through the balancer', 120_000, async () => {
      const res = await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(2000) }).catch(() => null);
      return res?.status === 200;
    });
    const migrate = await stack.containers('migrate');
    check(migrate.length === 1, `one migrate container (found ${migrate.length})`);
    const [m] = migrate;
    check(m.status === 'exited' && m.exitCode === 0 && m.restarts === 0, `migrate ran once and exited 0: ${JSON.stringify(m)}`);
    const lines = (await stack.logsOf(m.id)).split('\n');
    const runs = lines.filter((l) => l.includes('"context":"Migrations"') && /"msg":"(applied |schema up to date)/.test(l)).length;
    check(runs === 1, `migrate applied the migrations once (${runs} times)`);
    const retries = lines.filter((l) => l.includes('retrying')).length;
    say(`   migrate: exited 0, migrations applied once, ${retries} retries while Postgres started`);
    const healthy = await replicasHealthy(3, 120_000);
    say(`   healthy: ${healthy.map((c) => `${c.name} (${c.restarts} restarts)`).join(', ')}`);
    await balancerReachesAll(60_000);
    say('   the balancer reaches all 3');
  });

  const room = `compose-${randomBytes(3).toString('hex')}`;
  let list;
  let where;
  await phase('exchange over 3 replicas (polling, websocket, raw ws)', async () => {
    list = await connectClients(6, room, 'u3');
    where = await placeClients(list);
    say(`   placement: ${describePlacement(where)}`);
    const replicas = new Set(where.values());
    check(replicas.size === 3, `clients spread over all 3 replicas (on ${[...replicas].join(', ')})`);
    await exchange(list, room);
  });

  await phase('docker kill a replica: reconnect and recover with sinceSeq', async () => {
    const holders = countBy(where.values());
    const victim = [...holders].sort((a, b) => b[1] - a[1])[0][0];
    const affected = list.filter((c) => where.get(c) === victim);
    const survivors = list.filter((c) => where.get(c) !== victim);
    const sessionsBefore = new Map(affected.map((c) => [c, c.sessions]));
    const before = Math.max(...list.map((c) => c.upTo));
    await run('docker', ['kill', victim], { timeoutMs: 30_000 });
    const killedAt = Date.now();
    // Sent while the victim's clients are away: they wait at least 0.75 s before they reconnect
    // (socket.io: 1.5 s with its ±50 % jitter; ws: 1.5 s).
    const away = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        sendReliably(survivors[i % survivors.length], { roomId: room, body: `while away ${i}`, clientMsgId: `away-${i}` }),
      ),
    );
    check(
      away.every((a) => a.ok),
      `sends while away acked: ${JSON.stringify(away.filter((a) => !a.ok))}`,
    );
    say(`   killed ${victim} (${affected.map((c) => c.name).join(', ')}); 10 messages acked ${Date.now() - killedAt} ms later`);
    const last = before + 10;
    await Promise.all(affected.map((c) => c.waitSessions(sessionsBefore.get(c) + 1, 30_000)));
    say(`   ${affected.length} clients rejoined within ${seconds(Date.now() - killedAt)} of the kill`);
    await Promise.all(list.map((c) => c.waitUpTo(last, 20_000)));
    await sleep(1000);
    const dead = (await stack.containers('chat')).find((c) => c.name === victim);
    check(dead.status === 'exited' && dead.exitCode === 137, `${victim} was killed: ${dead.status}, exit ${dead.exitCode}`);
    const now = await placeClients(affected);
    for (const c of affected) check(now.get(c) !== victim, `${c.name} reconnected to a live replica, not ${now.get(c)}`);
    say(`   reconnected: ${describePlacement(now)}`);
    for (const c of list) {
      for (let seq = before + 1; seq <= last; seq++) {
        const got = c.arrivals.get(seq) ?? [];
        const expected = affected.includes(c) ? 'missed' : 'live';
        check(
          got.length === 1 && got[0] === expected,
          `${c.name}: seq ${seq} arrived once, ${expected} (arrivals: ${got.join(',') || 'none'})`,
        );
      }
    }
    say(
      `   ${affected.length} clients recovered seq ${before + 1}..${last} through room.join { sinceSeq }; the others got them live; no duplicates`,
    );
    for (const c of affected) where.set(c, now.get(c));
  });

  await phase('docker stop a replica while clients send: no acked message lost', async () => {
    const holders = countBy(where.values());
    const victim = [...holders].sort((a, b) => b[1] - a[1])[0][0];
    const affected = list.filter((c) => where.get(c) === victim);
    const sessionsBefore = new Map(affected.map((c) => [c, c.sessions]));
    const acked = [];
    const refused = new Map();
    let sending = true;
    const loops = list.map(async (c, ci) => {
      for (let i = 0; sending; i++) {
        const reply = await c
          .request('message.send', { roomId: room, body: `during drain ${ci}.${i}`, clientMsgId: `d-${ci}-${i}` })
          .catch((err) => ({ ok: false, error: { code: err.message } }));
        if (reply.ok) acked.push(reply.data);
        else refused.set(reply.error.code, (refused.get(reply.error.code) ?? 0) + 1);
        await sleep(200);
      }
    });
    await sleep(1000);
    const t0 = Date.now();
    await run('docker', ['stop', victim], { timeoutMs: 60_000 });
    const stopMs = Date.now() - t0;
    await sleep(1500);
    sending = false;
    await Promise.all(loops);
    const stopped = (await stack.containers('chat')).find((c) => c.name === victim);
    check(
      stopped.status === 'exited' && stopped.exitCode === 0,
      `${victim} drained and exited 0 (${stopped.status}, exit ${stopped.exitCode})`,
    );
    say(`   stopped ${victim} (${affected.map((c) => c.name).join(', ')}) in ${seconds(stopMs)}, exit 0`);
    say(`   sends: ${acked.length} acked, not acked: ${JSON.stringify(Object.fromEntries(refused))}`);
    check(acked.length > 0, 'sends were acked during the drain');
    await Promise.all(affected.map((c) => c.waitSessions(sessionsBefore.get(c) + 1, 30_000)));
    const history = await readHistory(room);
    const bySeq = new Map(history.map((m) => [m.seq, m]));
    const lost = acked.filter((a) => bySeq.get(a.seq)?.id !== a.id);
    check(lost.length === 0, `every acked message is in the history (missing: ${JSON.stringify(lost.slice(0, 5))})`);
    check(
      history.every((m, i) => m.seq === i + 1),
      'the history has seq 1..n without gaps',
    );
    const last = history.length;
    await Promise.all(list.map((c) => c.waitUpTo(last, 20_000)));
    for (const c of list) {
      for (const [seq, got] of c.arrivals)
        check(got.filter((g) => g === 'live').length <= 1, `${c.name}: seq ${seq} pushed live at most once (${got})`);
    }
    say(
      `   history: ${history.length} messages, every one of the ${acked.length} acked among them; every client has seq 1..${last}, no live push twice (${list.reduce((n, c) => n + c.redundant, 0)} already-held seqs came again through sinceSeq, as the contract allows)`,
    );
    const now = await placeClients(affected);
    say(`   reconnected: ${describePlacement(now)}`);
  });

  for (const c of list) c.close();

  await phase('scale to 5 replicas; the balancer finds them', async () => {
    await stack.compose(['up', '-d', '--no-deps', '--no-recreate', '--scale', 'chat=5', 'chat'], 180_000);
    const healthy = await replicasHealthy(5, 150_000);
    say(`   healthy: ${healthy.map((c) => `${c.name} (${c.restarts} restarts)`).join(', ')}`);
    await balancerReachesAll(60_000);
    say('   the balancer reaches all 5');
    const migrate = await stack.containers('migrate');
    check(migrate.length === 1 && migrate[0].status === 'exited' && migrate[0].exitCode === 0, 'migrate stays done');
  });

  await phase('exchange over 5 replicas', async () => {
    const room5 = `compose5-${randomBytes(3).toString('hex')}`;
    const five = await connectClients(10, room5, 'u5');
    const placed = await placeClients(five);
    say(`   placement: ${describePlacement(placed)}`);
    const replicas = new Set(placed.values());
    check(replicas.size === 5, `clients spread over all 5 replicas (on ${[...replicas].join(', ')})`);
    await exchange(five, room5);
  });
}

function countBy(values) {
  const counts = new Map();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return counts;
}

/** The whole history of a room through the balancer's HTTP API (GET /v1, X-API-Key). */
async function readHistory(roomId) {
  const messages = [];
  for (let more = true; more;) {
    const res = await fetch(`${url}/v1/rooms/${roomId}/messages?afterSeq=${messages.at(-1)?.seq ?? 0}&limit=100`, {
      headers: { 'X-API-Key': settings.API_KEYS },
      signal: AbortSignal.timeout(5000),
    });
    check(res.status === 200, `GET /v1/rooms/${roomId}/messages: ${res.status} ${await res.clone().text()}`);
    const page = await res.json();
    messages.push(...page.messages);
    more = page.hasMore;
  }
  return messages;
}

try {
  await main();
} catch (err) {
  failed = true;
  say(`FAILED: ${err instanceof CheckFailed ? err.message : (err.stack ?? err)}`);
  await diagnose().catch(() => undefined);
}
clearTimeout(watchdog);
await finish(failed ? 1 : 0);
