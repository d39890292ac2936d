// Scenario d, reconnect storm: N clients, all on instance 1 and joined to rooms of 50, while one
// sender per room on instance 2 keeps sending. Instance 1 is killed (SIGKILL); every client
// reconnects to instance 2 after a random delay in [0, jitterMs] and rejoins its room — on the
// service with room.join { sinceSeq } and history pages, recovering what it missed. Measured: the
// time from the kill until every client is back (and, on the service, caught up), and the acked
// messages some member never got. The baseline (same clients, same kill) cannot recover: its
// figure is its connect storm, and its losses are shown for what they are.
import { nowUs } from '../lib/hist.mjs';
import { fmt, noisyNote, probeFor, QUIET_MS, quietBefore, summarizeCpu, validity } from '../lib/measure.mjs';
import { instancesOf, mergeCounts, setupGroup, sideOrder, sleep, teardownGroup, TRANSPORT_NAME } from './common.mjs';

function pct(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

async function one(ctx, { side, transport, repeat, cfg }) {
  const [a, b] = instancesOf(ctx, side, transport);
  const rooms = Math.max(1, Math.floor(cfg.clients / cfg.roomSize));
  const tag = `st-${side}-${transport}-r${repeat}-${ctx.runId}`;
  const roomName = (r) => `${tag}-${r}`;
  const members = `${tag}-m`;
  const senders = `${tag}-s`;
  const memberSpecs = Array.from({ length: rooms * cfg.roomSize }, (_, i) => ({
    worker: i,
    userId: `${tag}-u${i}`,
    url: a.url,
    room: roomName(Math.floor(i / cfg.roomSize)),
  }));
  // Senders do not join: they are the rooms' writers only.
  const senderSpecs = Array.from({ length: rooms }, (_, r) => ({ worker: r, userId: `${tag}-s${r}`, url: b.url, sendRoom: roomName(r) }));
  const quiet = await quietBefore(ctx, nowUs() + QUIET_MS * 1000);
  const setup = await setupGroup(ctx, { group: members, kind: transport, specs: memberSpecs, concurrency: cfg.concurrency });
  const sSetup = await setupGroup(ctx, { group: senders, kind: transport, specs: senderSpecs });
  await ctx.pool.all('stormArm', {
    group: members,
    fallbackUrl: b.url,
    jitterMs: cfg.jitterMs,
    recover: side === 'service',
    capacity: cfg.capacity,
    deadlineMs: cfg.deadlineMs,
  });
  await ctx.pool.all('stormSendStart', { group: senders, perSenderRate: cfg.perSenderRate, maxMs: cfg.deadlineMs + 20_000 });
  await sleep(cfg.beforeKillMs);

  const probe = probeFor(ctx, [a.pid, b.pid]);
  const c0 = probe.sample();
  const tKill = nowUs();
  await a.kill();
  const waits = await ctx.pool.all('stormWait', { group: members, deadlineMs: cfg.deadlineMs }, cfg.deadlineMs + 30_000);
  const c1 = probe.sample();
  const cpu = summarizeCpu(ctx, probe.diff(c0, c1));
  await sleep(cfg.afterMs);
  const stops = await ctx.pool.all('stormSendStop', { group: senders }, 60_000);
  await sleep(cfg.drainMs);
  const acked = {};
  for (const s of stops) for (const [room, ns] of Object.entries(s.acked)) (acked[room] ??= []).push(...ns);
  const checks = await ctx.pool.all('stormCheck', { group: members, acked }, 60_000);
  await teardownGroup(ctx, members);
  await teardownGroup(ctx, senders);
  await a.start(); // back for the next runs

  const done = waits
    .flatMap((w) => w.doneAt)
    .map((t) => (t - tKill) / 1000)
    .sort((x, y) => x - y);
  const lostAt = waits
    .flatMap((w) => w.lostAt)
    .map((t) => (t - tKill) / 1000)
    .sort((x, y) => x - y);
  const gaveUp = waits.reduce((s, w) => s + w.gaveUp, 0);
  const lostMessages = new Set(checks.flatMap((c) => c.lostMessages));
  const allBack = done.length === setup.connected && gaveUp === 0;
  const rec = {
    side,
    transport,
    repeat,
    clients: setup.connected,
    setupFailed: setup.failed,
    senders: sSetup.connected,
    reconnected: done.length,
    gaveUp,
    allBack,
    allBackMs: allBack ? Math.round(done.at(-1)) : null,
    backP50Ms: pct(done, 50),
    backP99Ms: pct(done, 99),
    lastDisconnectSeenMs: lastOf(lostAt),
    attempts: waits.reduce((s, w) => s + w.attempts, 0),
    joinErrors: mergeCounts(waits.map((w) => w.joinErrors)),
    connectErrors: mergeCounts(waits.map((w) => w.connectErrors)),
    ackedMessages: Object.values(acked).reduce((s, ns) => s + ns.length, 0),
    sendErrors: mergeCounts(stops.map((s) => s.errors)),
    expectedDeliveries: checks.reduce((s, c) => s + c.expected, 0),
    lostDeliveries: checks.reduce((s, c) => s + c.lostDeliveries, 0),
    clientsWithLoss: checks.reduce((s, c) => s + c.clientsWithLoss, 0),
    lostMessages: lostMessages.size,
    recovers: side === 'service',
    cpu,
    ...quiet,
    ...validity(cpu),
  };
  ctx.log(
    `storm   ${TRANSPORT_NAME[transport].padEnd(9)} r${repeat} ${side.padEnd(8)} ${rec.clients} clients: ` +
      (allBack
        ? `all back${side === 'service' ? ' and caught up' : ''} in ${rec.allBackMs} ms`
        : `${done.length} back, ${gaveUp} gave up`) +
      ` (p50 ${fmt.ms(rec.backP50Ms)} p99 ${fmt.ms(rec.backP99Ms)} ms)  acked ${rec.ackedMessages}, lost ${rec.lostMessages} messages / ${rec.lostDeliveries} deliveries` +
      `  gen ${fmt.pct(cpu.genMaxWorkerPct)}/proc pg ${fmt.pct(cpu.pgPct)} host ${fmt.pct(cpu.hostBusyPct)}${noisyNote(rec)}${rec.valid ? '' : '  INVALID'}` +
      `  ${rec.attempts} connects${failedConnects(rec.connectErrors)}`,
  );
  return rec;
}

/** The reasons connects failed, for the log: what made clients retry. */
function failedConnects(errors) {
  const entries = Object.entries(errors).sort((a, b) => b[1] - a[1]);
  return entries.length ? ` (failed: ${entries.map(([reason, n]) => `${n} ${reason}`).join(', ')})` : '';
}

function lastOf(xs) {
  return xs.length ? Math.round(xs.at(-1)) : null;
}

export async function storm(ctx) {
  const cfg = ctx.sizes.storm;
  const out = { config: { ...cfg }, runs: [] };
  for (let repeat = 1; repeat <= ctx.repeats; repeat++) {
    for (const transport of ['io', 'ws']) {
      for (const side of sideOrder(repeat)) {
        if (ctx.outOfTime()) return { ...out, truncated: true };
        out.runs.push(await one(ctx, { side, transport, repeat, cfg }));
      }
    }
  }
  return out;
}
