// Measurement windows shared by the scenarios: CPU of the measured instances, of the load
// generator (each worker), of Postgres and Redis, and the host, over one window.
import { nowUs } from './hist.mjs';
import { CpuProbe, postgresPids, redisPids, round1 } from './procs.mjs';

export const GEN_LIMIT_PCT = 85;
/** The quiet stretch sampled before every step, and the host busy % above which it counts as noisy. */
export const QUIET_MS = 1000;
export const NOISY_PCT = 15;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function until(t) {
  const ms = (t - nowUs()) / 1000;
  if (ms > 0) await sleep(ms);
}

export function probeFor(ctx, targetPids) {
  return new CpuProbe({
    target: () => targetPids,
    gen: () => ctx.pool.pids,
    pg: postgresPids,
    pgBench: ctx.pgBenchPids,
    redis: redisPids,
  });
}

export function summarizeCpu(ctx, d) {
  const perWorker = ctx.pool.pids.map((pid) => d.gen.perPid[pid] ?? 0);
  return {
    seconds: Math.round(d.seconds * 1000) / 1000,
    targetPct: d.target.pct,
    targetCpuMs: Math.round(d.target.cpuMs),
    targetPerPid: Object.values(d.target.perPid),
    genPct: d.gen.pct,
    genMaxWorkerPct: Math.max(0, ...perWorker),
    genPerWorker: perWorker,
    pgPct: d.pg.pct,
    pgBenchPct: d.pgBench.pct,
    pgBenchCpuMs: Math.round(d.pgBench.cpuMs),
    redisPct: d.redis.pct,
    hostBusyPct: d.host.busyPct,
    hostCores: d.host.cores,
    load1: d.host.load1,
  };
}

/** Samples CPU at the hrtime instants start and end (µs). */
export async function cpuWindow(ctx, targetPids, startUs, endUs) {
  const probe = probeFor(ctx, targetPids);
  await until(startUs);
  const a = probe.sample();
  await until(endUs);
  const b = probe.sample();
  return summarizeCpu(ctx, probe.diff(a, b));
}

/** Postgres CPU (the bench database's backends) per message stored in the window, in µs. */
export function pgUsPerMessage(cpu, stored) {
  return stored > 0 ? round1((cpu.pgBenchCpuMs * 1000) / stored) : null;
}

/** Every process the bench started, and the backends of its database (not the shared Redis). */
function benchPids(ctx) {
  const instances = [...ctx.services, ...Object.values(ctx.baselines).flat()];
  return [...instances.map((i) => i.pid).filter(Boolean), ...ctx.pool.pids, ...ctx.pgBenchPids()];
}

/**
 * How busy the host was from now until endUs (hrtime µs), a stretch in which the bench sends
 * nothing: what is busy then is mostly other work on the host. benchPct is the bench's own share,
 * in % of the whole host like hostBusyPct. noisyBefore when the host was over NOISY_PCT busy.
 */
export async function quietBefore(ctx, endUs) {
  const probe = new CpuProbe({ bench: () => benchPids(ctx) });
  const a = probe.sample();
  await until(endUs);
  const d = probe.diff(a, probe.sample());
  const quiet = { seconds: Math.round(d.seconds * 1000) / 1000, hostBusyPct: d.host.busyPct, benchPct: round1(d.bench.pct / d.host.cores) };
  return { quietBefore: quiet, noisyBefore: quiet.hostBusyPct > NOISY_PCT };
}

/** " noisy before (host 23% busy)" for progress lines, or nothing. */
export function noisyNote(rec) {
  return rec.noisyBefore ? `  noisy before (host ${fmt.pct(rec.quietBefore.hostBusyPct)} busy)` : '';
}

/** A step is invalid when one load-generator process passed 85% of a core (it measured itself). */
export function validity(cpu, extra = []) {
  const reasons = [...extra];
  if (cpu.genMaxWorkerPct > GEN_LIMIT_PCT)
    reasons.push(`load generator process at ${cpu.genMaxWorkerPct}% of a core (> ${GEN_LIMIT_PCT}%)`);
  return { valid: reasons.length === 0, invalidReasons: reasons };
}

export const fmt = {
  k: (x) => (x === null || x === undefined ? '–' : x >= 1000 ? `${(x / 1000).toFixed(x >= 10000 ? 1 : 2)}k` : `${Math.round(x)}`),
  ms: (x) => (x === null || x === undefined ? '–' : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : Math.round(x).toString()),
  pct: (x) => (x === null || x === undefined ? '–' : `${Math.round(x)}%`),
  us: (x) => (x === null || x === undefined ? '–' : x < 100 ? x.toFixed(1) : Math.round(x).toString()),
  n1: (x) => (x === null || x === undefined ? '–' : x.toFixed(1)),
  mb: (x) => (x === null || x === undefined ? '–' : `${(x / 1048576).toFixed(1)} MiB`),
  kb: (x) => (x === null || x === undefined ? '–' : `${(x / 1024).toFixed(1)} KiB`),
};

export function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
