// The soak (bench --soak <minutes>): two service instances under half the measured maximum fan-out
// rate for a long time, with sends, joins, leaves and reconnects (a fraction of the members cycles
// every ~30 s). Every 10 s, RSS (/proc), heapUsed (/metrics) and CPU of both instances, and less
// often heap after a forced GC (the bench's gc-hook); at the end, growth after the warm-up, the
// acked messages some member still joined never got, and p99 delivery latency per 5-minute window.
import { Histogram, nowUs } from '../lib/hist.mjs';
import { memoryAfterGc, serviceMetrics } from '../lib/infra.mjs';
import { fmt } from '../lib/measure.mjs';
import { cpuTicks, CLK_TCK, hostTicks, rssBytes, round1 } from '../lib/procs.mjs';
import { mergeCounts, setupGroup, sleep, teardownGroup } from './common.mjs';

export const SOAK_MAX_MINUTES = 240;
export const SOAK = {
  clients: 1000,
  roomSize: 50,
  sampleEveryMs: 10_000,
  // A forced GC holds an instance for 0.1-0.5 s (measured, 2 cores shared): at most once a minute.
  gcAtMostEveryMs: 60_000,
  cycleEveryMs: 30_000,
  cycleFraction: 0.1,
  warmupMs: 120_000,
  windowMs: 300_000,
  drainMs: 3000,
};
const KINDS = ['io', 'ws'];

/**
 * Growth windows: the first `w` after the warm-up against the last `w`, w = 5 min, or half of what
 * follows the warm-up when the soak is shorter than 12 min (and the warm-up half of a soak
 * shorter than 4 min). gcEveryMs: how often heap after GC is read, so that each window holds
 * at least 3 such samples, but not more often than every 10 s nor less than every minute.
 */
export function growthWindows(durationMs) {
  const warmupMs = Math.min(SOAK.warmupMs, durationMs / 2);
  const windowMs = Math.min(SOAK.windowMs, (durationMs - warmupMs) / 2);
  const every = SOAK.sampleEveryMs;
  const gcEveryMs = Math.max(every, Math.min(SOAK.gcAtMostEveryMs, Math.floor(windowMs / 3 / every) * every));
  return { warmupMs, windowMs, gcEveryMs };
}

/** % growth of `field` (samples' t in ms since the soak's start): last window's mean vs the first's after the warm-up. */
export function growthPct(samples, field, durationMs) {
  const { warmupMs, windowMs } = growthWindows(durationMs);
  const mean = (from, to) => {
    const v = samples.filter((s) => s.t >= from && s.t <= to && typeof s[field] === 'number').map((s) => s[field]);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  };
  const first = mean(warmupMs, warmupMs + windowMs);
  const last = mean(durationMs - windowMs, durationMs);
  return first && last !== null ? round1(((last - first) / first) * 100) : null;
}

/** Clients in rooms of roomSize; each room's members alternate transport and instance; one sender per room. */
function specsFor(ctx, urls) {
  const rooms = Math.floor(SOAK.clients / SOAK.roomSize);
  const W = ctx.pool.workers.length;
  const byKind = { io: [], ws: [] };
  for (let i = 0; i < rooms * SOAK.roomSize; i++) {
    const r = Math.floor(i / SOAK.roomSize);
    const member = i % SOAK.roomSize;
    byKind[member % 2 === 0 ? 'io' : 'ws'].push({
      worker: i % W,
      userId: `sk-${ctx.runId}-u${i}`,
      url: urls[Math.floor(member / 2) % urls.length],
      room: `sk-${ctx.runId}-${r}`,
      // Members 0 and 1 are an io and a ws client: rooms take turns for which one sends.
      sender: member === r % 2,
    });
  }
  return { byKind, rooms };
}

async function sampleInstances(ctx, t, prev, withGc) {
  const host = hostTicks();
  const per = [];
  for (const inst of ctx.services) {
    const rss = rssBytes(inst.pid);
    const ticks = cpuTicks(inst.pid);
    // A failed read is a missing sample.
    const asIs = await serviceMetrics(inst).catch(() => null);
    const mem = withGc ? await memoryAfterGc(inst, 'service').catch(() => null) : null;
    per.push({ rss, heapUsed: asIs?.heapUsed ?? null, heapAfterGc: mem?.heapUsed ?? null, gcMs: mem ? round1(mem.gcMs) : null, ticks });
  }
  const seconds = prev ? (t - prev.t) / 1000 : null;
  const sample = { t, host, per };
  sample.instances = per.map((p, i) => ({
    rss: p.rss,
    heapUsed: p.heapUsed,
    heapAfterGc: p.heapAfterGc,
    gcMs: p.gcMs,
    cpuPct:
      prev && p.ticks !== null && prev.per[i].ticks !== null ? round1(((p.ticks - prev.per[i].ticks) / CLK_TCK / seconds) * 100) : null,
  }));
  sample.hostBusyPct = prev ? round1(((host.busy - prev.host.busy) / Math.max(1, host.total - prev.host.total)) * 100) : null;
  return sample;
}

export async function soak(ctx, { minutes, deliveriesPerSec }) {
  const durationMs = minutes * 60_000;
  const urls = ctx.services.map((s) => s.url);
  const { byKind, rooms } = specsFor(ctx, urls);
  const senders = rooms;
  const perSenderRate = deliveriesPerSec / SOAK.roomSize / senders;
  const groups = KINDS.map((k) => `soak-${k}`);
  for (const kind of KINDS) {
    const s = await setupGroup(ctx, { group: `soak-${kind}`, kind, specs: byKind[kind] });
    ctx.log(
      `soak setup ${kind}: ${s.connected} connected, ${s.failed} failed in ${s.ms} ms${s.failed ? ` ${JSON.stringify(s.errors)}` : ''}`,
    );
  }
  ctx.log(
    `soak: ${minutes} min at ${fmt.k(deliveriesPerSec)} deliveries/s offered (${senders} senders at ${perSenderRate.toFixed(2)}/s into rooms of ${SOAK.roomSize}), ` +
      `${Math.round(SOAK.cycleFraction * 100)}% of the members cycling every ${SOAK.cycleEveryMs / 1000} s`,
  );
  const t0 = nowUs() + 1_000_000;
  const cycle = { everyMs: SOAK.cycleEveryMs, fraction: SOAK.cycleFraction, urls };
  for (const group of groups)
    await ctx.pool.all('soakStart', { group, t0, durationMs, perSenderRate, windowMs: SOAK.windowMs, cycle }, 30_000);

  // Samples at t = 0, 10 s, …, the last at the end (heap after GC every gcEveryMs); every minute a progress line.
  const { gcEveryMs } = growthWindows(durationMs);
  const gcEvery = gcEveryMs / SOAK.sampleEveryMs;
  const samples = [];
  const notes = [];
  let prev = null;
  const count = Math.floor(durationMs / SOAK.sampleEveryMs);
  for (let k = 0; k <= count; k++) {
    await sleep(Math.max(0, (t0 + k * SOAK.sampleEveryMs * 1000 - nowUs()) / 1000));
    const dead = ctx.services.filter((s) => !s.alive);
    if (dead.length) {
      notes.push(
        `${dead.map((s) => s.name).join(', ')} exited during the soak at ${Math.round((k * SOAK.sampleEveryMs) / 1000)} s: stopped early`,
      );
      break;
    }
    const s = await sampleInstances(ctx, k * SOAK.sampleEveryMs, prev, k % gcEvery === 0 || k === count);
    samples.push(s);
    prev = s;
    if (k % 6 === 0 && k > 0) {
      const prog = (await Promise.all(groups.map((group) => ctx.pool.all('soakProgress', { group }, 30_000)))).flat();
      const acked = prog.reduce((a, p) => a + p.acked, 0);
      const errors = prog.reduce((a, p) => a + Object.values(p.errors).reduce((x, y) => x + y, 0), 0);
      const cycled = prog.reduce((a, p) => a + p.cycles.leaves + p.cycles.reconnects, 0);
      ctx.log(
        `soak ${String(Math.round(s.t / 60000)).padStart(3)}/${minutes} min  acked ${acked} (errors ${errors})  cycles ${cycled}  ` +
          s.instances
            .map(
              (x, i) =>
                `svc${i + 1} RSS ${fmt.mb(x.rss)} heap ${fmt.mb(x.heapUsed)} (after GC ${fmt.mb(lastOf(samples, i, 'heapAfterGc'))}) CPU ${fmt.pct(x.cpuPct)}`,
            )
            .join('  ') +
          `  host ${fmt.pct(s.hostBusyPct)}`,
      );
    }
  }
  const endedMs = samples.length ? samples.at(-1).t : 0;

  const stops = (await Promise.all(groups.map((group) => ctx.pool.all('soakStop', { group }, 120_000)))).flat();
  await sleep(SOAK.drainMs);
  // Loss: the acked seqs each member still joined has not got (live, or recovered on rejoining).
  const floors = {};
  for (const group of groups)
    for (const f of await ctx.pool.all('soakFloors', { group }, 60_000))
      for (const [room, v] of Object.entries(f)) floors[room] = Math.min(floors[room] ?? Infinity, v);
  const acked = {};
  const totals = {};
  for (const group of groups)
    for (const a of await ctx.pool.all('soakAcked', { group, floors }, 60_000)) {
      for (const [room, seqs] of Object.entries(a.acked)) acked[room] = (acked[room] ?? []).concat(seqs);
      for (const [room, n] of Object.entries(a.totals)) totals[room] = (totals[room] ?? 0) + n;
    }
  const checks = (await Promise.all(groups.map((group) => ctx.pool.all('soakCheck', { group, acked, totals }, 60_000)))).flat();
  for (const group of groups) await teardownGroup(ctx, group);

  // Latency of live deliveries by the send time's 5-minute window.
  const windows = [];
  for (const st of stops)
    st.windows.forEach((w, i) => {
      if (w) (windows[i] ??= new Histogram()).add(w);
    });
  const byWindow = Array.from({ length: windows.length }, (_, i) => {
    const sum = (windows[i] ?? new Histogram()).summary();
    return { fromMin: (i * SOAK.windowMs) / 60000, toMin: Math.min(((i + 1) * SOAK.windowMs) / 60000, endedMs / 60000), ...sum };
  });

  const perInstance = ctx.services.map((inst, i) => {
    const series = samples.map((s) => ({ t: s.t, ...s.instances[i] }));
    const gc = series.map((s) => s.gcMs).filter((x) => typeof x === 'number');
    return {
      name: inst.name,
      heapGrowthPct: growthPct(series, 'heapAfterGc', endedMs),
      heapUsedGrowthPct: growthPct(series, 'heapUsed', endedMs),
      rssGrowthPct: growthPct(series, 'rss', endedMs),
      gcMsMean: gc.length ? round1(gc.reduce((a, b) => a + b, 0) / gc.length) : null,
      gcMsMax: gc.length ? Math.max(...gc) : null,
    };
  });
  const worst = (f) => {
    const v = perInstance.map(f).filter((x) => typeof x === 'number');
    return v.length ? Math.max(...v) : null;
  };
  const lostMessages = new Set(checks.flatMap((c) => c.lostMessages));
  const sum = (list, f) => list.reduce((a, x) => a + f(x), 0);
  const { warmupMs, windowMs } = growthWindows(endedMs);
  const skipped = sum(stops, (s) => s.skipped);
  const sentAll = sum(stops, (s) => s.sent);
  if (skipped > 0.01 * (sentAll + skipped))
    notes.push(
      `the load generator could not keep the send pace (${skipped} sends skipped of ${sentAll + skipped}): the host was short of CPU`,
    );
  const hostBusy = samples.map((s) => s.hostBusyPct).filter((x) => typeof x === 'number');
  const summary = {
    minutes,
    ranMinutes: round1(endedMs / 60000),
    deliveriesPerSec,
    config: { ...SOAK, senders, rooms, perSenderRate: Math.round(perSenderRate * 100) / 100 },
    growthWindows: { warmupMin: round1(warmupMs / 60000), windowMin: round1(windowMs / 60000), gcEverySec: gcEveryMs / 1000 },
    hostBusyPctMean: hostBusy.length ? round1(hostBusy.reduce((a, b) => a + b, 0) / hostBusy.length) : null,
    heapGrowthPct: worst((p) => p.heapGrowthPct),
    rssGrowthPct: worst((p) => p.rssGrowthPct),
    perInstance,
    lost: lostMessages.size,
    lostDeliveries: sum(checks, (c) => c.lostDeliveries),
    clientsWithLoss: sum(checks, (c) => c.clientsWithLoss),
    membersChecked: sum(checks, (c) => c.checked),
    membersLeftOut: sum(stops, (s) => s.gaveUp),
    ackedMessages: sum(stops, (s) => s.acked),
    expectedDeliveries: sum(checks, (c) => c.expected),
    sent: sentAll,
    skipped,
    sendErrors: mergeCounts(stops.map((s) => s.errors)),
    joinErrors: mergeCounts(stops.map((s) => s.joinErrors)),
    cycles: mergeCounts(stops.map((s) => s.cycles)),
    drops: sum(stops, (s) => s.drops),
    p99ByWindowMs: byWindow.map((w) => w.p99),
    latencyByWindow: byWindow,
    notes,
  };
  summary.targets = soakTargets(summary);
  return { summary, samples: samples.map(({ t, hostBusyPct, instances }) => ({ t, hostBusyPct, instances })) };
}

export const SOAK_GROWTH_LIMIT_PCT = 5;

/** The latest sample of instance i with `field`. */
function lastOf(samples, i, field) {
  for (let k = samples.length - 1; k >= 0; k--)
    if (typeof samples[k].instances[i][field] === 'number') return samples[k].instances[i][field];
  return null;
}

function soakTargets(s) {
  const growth = (label, v) => ({
    label: `${label} growth after the warm-up (the larger of the 2 instances)`,
    threshold: `≤ ${SOAK_GROWTH_LIMIT_PCT}%`,
    value: v,
    met: v === null ? null : v <= SOAK_GROWTH_LIMIT_PCT,
  });
  return [
    growth('heap (after GC)', s.heapGrowthPct),
    growth('RSS', s.rssGrowthPct),
    { label: 'acked messages lost (for a member still joined)', threshold: '0', value: s.lost, met: s.lost === 0 && s.membersChecked > 0 },
  ];
}
