#!/usr/bin/env node
// `npm run bench` (full) / `npm run bench -- --quick` (about a minute or two of scenarios).
// Starts 2 service instances (dist/main.js, on a scratch database bench_<random>), 2 instances of
// each baseline and the load-generator processes; runs the scenarios with service and baseline
// interleaved step by step; writes bench/results/<date>-<commit>.json, bench/results/latest.json
// and docs/performance.md (a run with --only: bench/results/<date>-<commit>-only-<keys>.json alone);
// stops everything it started (also on Ctrl-C and on errors).
//   Options: --quick, --only a,b,c,d, --repeats N, --workers N, --profile <dir> (service CPU profiles),
//   --instances N (service and baseline instances, 1-8, default 2), --redis-cluster (the service on a Redis Cluster of the bench's own);
//   --render <results.json> re-evaluates a stored run (its file, latest.json if it is that run, docs/performance.md);
//   --soak <minutes> [--soak-rate N] runs the soak instead (bench/scenarios/soak.mjs).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { createDatabase, Registry, ROOT, serverVersions, startBaselines, startServices } from './lib/infra.mjs';
import { startRedisCluster } from './lib/redis-cluster.mjs';
import { loadavg, postgresBackendsOf } from './lib/procs.mjs';
import { evaluateTargets, renderMarkdown, serviceFanoutMax, withHeadline } from './lib/report.mjs';
import { fmt } from './lib/measure.mjs';
import { WorkerPool } from './load/pool.mjs';
import { durable } from './scenarios/durable.mjs';
import { fanout } from './scenarios/fanout.mjs';
import { idle, idleInstancesCpu } from './scenarios/idle.mjs';
import { soak, SOAK_MAX_MINUTES } from './scenarios/soak.mjs';
import { storm } from './scenarios/storm.mjs';

const args = process.argv.slice(2);
const flag = (name) => args.includes(`--${name}`);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const quick = flag('quick');
const render = option('render', null);
const SCENARIOS = ['a', 'b', 'c', 'd'];
const only = new Set(option('only', SCENARIOS.join(',')).split(','));
/** Some scenarios left out: the run is written to a file of its own only. */
const partial = SCENARIOS.some((key) => !only.has(key));
const repeats = Number(option('repeats', quick ? 1 : 3));
const workers = Number(option('workers', 4));
const profileDir = option('profile', null);
const soakMinutes = option('soak', null) === null ? null : Number(option('soak'));
const instances = Number(option('instances', 2));
const MAX_INSTANCES = 8;
const redisCluster = flag('redis-cluster');
const IDLE_CPU_SECONDS = 10;
const LATEST = `${ROOT}bench/results/latest.json`;

const SIZES = quick
  ? {
      fanout: { clients: 200, roomSize: 50, senders: 20, steps: [2000, 4000], warmMs: 500, measureMs: 2000 },
      durable: {
        connections: 40,
        rooms: 200,
        many: [500, 1000],
        hot: [250, 500],
        warmMs: 300,
        measureMs: 1200,
        maxInflightPerWorker: 2000,
      },
      idle: { connections: 2000, roomSize: 50, concurrency: 50, settleMs: 1000 },
      storm: {
        clients: 500,
        roomSize: 50,
        perSenderRate: 5,
        jitterMs: 500,
        capacity: 4096,
        concurrency: 50,
        beforeKillMs: 1000,
        afterMs: 500,
        drainMs: 1000,
        deadlineMs: 30_000,
      },
    }
  : {
      fanout: {
        clients: 1000,
        roomSize: 50,
        senders: 20,
        steps: [10, 20, 30, 40, 50, 60, 70, 80, 100, 120].map((k) => k * 1000),
        warmMs: 2000,
        measureMs: 5000,
      },
      durable: {
        connections: 200,
        rooms: 1000,
        many: [1000, 2000, 3000, 5000, 7500, 10000, 15000, 20000],
        hot: [500, 1000, 1500, 2000, 3000, 4000, 6000, 8000],
        warmMs: 1000,
        measureMs: 3000,
        maxInflightPerWorker: 4000,
      },
      idle: { connections: 10000, roomSize: 50, concurrency: 100, settleMs: 2000 },
      storm: {
        clients: 5000,
        roomSize: 50,
        perSenderRate: 2,
        jitterMs: 500,
        capacity: 8192,
        concurrency: 100,
        beforeKillMs: 1500,
        afterMs: 1000,
        drainMs: 1500,
        deadlineMs: 60_000,
      },
    };
const TIME_BUDGET_MS = quick ? 6 * 60_000 : 85 * 60_000;

const started = Date.now();
const stamp = () => {
  const s = Math.floor((Date.now() - started) / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
};
const log = (line) => process.stdout.write(`[${stamp()}] ${line}\n`);

function sh(cmd, argv) {
  try {
    return execFileSync(cmd, argv, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

/**
 * The open-file limit applies per process. The largest needs: a service or baseline instance holds
 * half of the idle connections, a load process its share of them; the storm puts all its clients on
 * one instance. If the limit is lower, the sizes shrink and the results say so.
 */
function fitToFdLimit(notes) {
  const limit = Number(sh('sh', ['-c', 'ulimit -n'])) || 1024;
  const margin = 300;
  const idleNeed = Math.max(SIZES.idle.connections / 2, SIZES.idle.connections / workers) + margin;
  if (idleNeed > limit) {
    const fit = Math.floor(((limit - margin) * 2) / 100) * 100;
    notes.push(
      `open-file limit ${limit} is below the ${Math.ceil(idleNeed)} per process that ${SIZES.idle.connections} idle connections need: idle scenario reduced to ${fit} connections`,
    );
    SIZES.idle.connections = fit;
  }
  if (SIZES.storm.clients + margin > limit) {
    const fit = Math.floor((limit - margin) / 50) * 50;
    notes.push(
      `open-file limit ${limit} is below the ${SIZES.storm.clients + margin} that a ${SIZES.storm.clients}-client storm on one instance needs: storm reduced to ${fit} clients`,
    );
    SIZES.storm.clients = fit;
  }
  return limit;
}

/**
 * The soak's rate: half the measured maximum fan-out rate, given as --soak-rate N (deliveries/s)
 * or the service's maximum in bench/results/latest.json (the lower transport). Checked before
 * anything starts.
 */
function soakPlan() {
  if (!(soakMinutes > 0 && soakMinutes <= SOAK_MAX_MINUTES))
    throw new Error(`--soak takes minutes, more than 0 and at most ${SOAK_MAX_MINUTES}`);
  const given = option('soak-rate', null);
  if (given !== null) {
    const max = Number(given);
    if (!(max > 0)) throw new Error('--soak-rate takes the maximum fan-out rate in deliveries/s (the soak runs at half of it)');
    return { deliveriesPerSec: Math.round(max / 2), rateSource: `half of --soak-rate ${max}` };
  }
  const latest = existsSync(LATEST) ? JSON.parse(readFileSync(LATEST, 'utf8')) : null;
  const max = serviceFanoutMax(latest);
  if (!max) throw new Error('bench/results/latest.json has no service fan-out maximum: run the bench first, or give --soak-rate N');
  return {
    deliveriesPerSec: Math.round(max.lower / 2),
    rateSource:
      `half of the service's fan-out maximum in bench/results/latest.json, commit ${latest.commit}${latest.meta?.quick ? ' (a quick run)' : ''}: ` +
      `socket.io ${max.perTransport.io ?? '–'}/s, ws ${max.perTransport.ws ?? '–'}/s, the lower`,
  };
}

/** latest.json as it is, or null. */
function readLatest() {
  try {
    return JSON.parse(readFileSync(LATEST, 'utf8'));
  } catch {
    return null;
  }
}

const registry = new Registry();

async function main() {
  let stopping = false;
  const abort = async (code, why) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${why}: stopping everything the bench started…\n`);
    await registry.cleanup();
    process.exit(code);
  };
  process.on('SIGINT', () => void abort(130, 'interrupted'));
  process.on('SIGTERM', () => void abort(143, 'terminated'));
  process.on('uncaughtException', (err) => void abort(1, `uncaught: ${err.stack ?? err}`));
  process.on('unhandledRejection', (err) => void abort(1, `unhandled rejection: ${err?.stack ?? err}`));

  if ([...only].some((key) => !SCENARIOS.includes(key)))
    throw new Error(`--only takes scenario keys from ${SCENARIOS.join(', ')}, comma-separated (a fan-out, b durable sends, c idle, d storm)`);
  if (!(Number.isInteger(instances) && instances >= 1 && instances <= MAX_INSTANCES))
    throw new Error(`--instances takes a whole number of service instances, 1 to ${MAX_INSTANCES}`);
  if (soakMinutes !== null && (args.includes('--instances') || redisCluster))
    throw new Error('the soak always runs 2 service instances: --instances and --redis-cluster are for the scenarios');
  if (!existsSync(`${ROOT}dist/main.js`)) throw new Error('dist/main.js is missing: run `npm run build` (npm run bench does)');
  const plan = soakMinutes === null ? null : soakPlan();
  const notes = [];
  const fdLimit = plan ? Number(sh('sh', ['-c', 'ulimit -n'])) || 1024 : fitToFdLimit(notes);
  const commit = sh('git', ['rev-parse', '--short', 'HEAD']) || 'unknown';
  const dirty = sh('git', ['status', '--porcelain', '--', 'src']).length > 0;
  const loadAtStart = loadavg();
  if (loadAtStart.l1 > 0.5)
    notes.push(`the host was not idle at the start (load average ${loadAtStart.l1}): other work shared the cores; see the host columns`);
  const runId = randomBytes(3).toString('hex');
  const secret = `bench-secret-${randomBytes(12).toString('hex')}`;

  log(
    plan
      ? `chat bench soak: ${soakMinutes} min, commit ${commit}, ${cpus().length} cores, ${workers} load processes`
      : `chat bench ${quick ? '(quick)' : '(full)'}: commit ${commit}, ${cpus().length} cores, open-file limit ${fdLimit}, ${repeats} repeat(s), ${workers} load processes`,
  );
  const db = await createDatabase(registry);
  const cluster = redisCluster ? await startRedisCluster(registry) : null;
  if (cluster)
    log(`redis cluster of 3 masters on ports ${cluster.ports.join(', ')} (the service's; the baselines keep ${'127.0.0.1:6379'})`);
  log(`database ${db.name} created; starting ${instances} service instances${plan ? '' : ` and ${instances} instances of each baseline`}…`);
  const [services, ioBase, wsBase] = await Promise.all([
    startServices(registry, {
      count: instances,
      databaseUrl: db.url,
      prefix: `bench-svc-${runId}`,
      secret,
      profileDir,
      redisCluster: cluster,
    }),
    plan ? [] : startBaselines(registry, { kind: 'io', count: instances, prefix: `bench-io-${runId}` }),
    plan ? [] : startBaselines(registry, { kind: 'ws', count: instances, prefix: `bench-ws-${runId}` }),
  ]);
  log(
    `service ${services.map((s) => s.url).join(' ')}` +
      (plan ? '' : ` | socket.io baseline ${ioBase.map((s) => s.url).join(' ')} | ws baseline ${wsBase.map((s) => s.url).join(' ')}`),
  );
  const pool = new WorkerPool(workers, { onSpawn: (child) => registry.track(child) });
  registry.onCleanup(() => pool.stop());

  const deadline = started + TIME_BUDGET_MS;
  const ctx = {
    quick,
    repeats,
    sizes: SIZES,
    secret,
    runId,
    pool,
    services,
    redisCluster,
    baselines: { io: ioBase, ws: wsBase },
    pgBenchPids: postgresBackendsOf(db.name),
    log,
    outOfTime: () => {
      if (Date.now() < deadline) return false;
      if (!ctx.warnedTime) notes.push(`the time budget (${TIME_BUDGET_MS / 60000} min) ran out: later steps were skipped`);
      ctx.warnedTime = true;
      return true;
    },
  };

  const machine = async () => ({
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    postgres: (await serverVersions().catch(() => ({ postgres: 'unknown' }))).postgres,
    redis: sh('redis-server', ['--version']).match(/v=(\S+)/)?.[1] ?? 'unknown',
  });
  if (plan) return soakRun(ctx, { ...plan, commit, dirty, notes, machine });

  // The instances' own CPU with no client, before anything has run (and after 2 s of settling).
  let idleCpu = null;
  if (only.has('c')) {
    await new Promise((r) => setTimeout(r, 2000));
    idleCpu = await idleInstancesCpu(ctx, IDLE_CPU_SECONDS);
    log(
      `idle service CPU, no clients, ${idleCpu.seconds} s: ${idleCpu.perInstance.map((p) => `${p.name} ${p.pct}%`).join(', ')} of a core  ` +
        `pg (bench db) ${idleCpu.pgBenchPct}%  host ${idleCpu.hostBusyPct}%`,
    );
  }

  const scenarios = {};
  for (const [key, name, fn] of [
    ['a', 'fanout', fanout],
    ['b', 'durable', durable],
    ['c', 'idle', idle],
    ['d', 'storm', storm],
  ]) {
    if (!only.has(key) || registry.stopping) continue;
    log(`— scenario ${key}: ${name}`);
    try {
      scenarios[name] = await fn(ctx);
    } catch (err) {
      log(`scenario ${name} failed: ${err.stack ?? err}`);
      scenarios[name] = { error: String(err.stack ?? err) };
      notes.push(`scenario ${name} failed: ${String(err.message ?? err).split('\n')[0]}`);
      if (registry.stopping) break;
      // An instance may have died: bring back what is down before going on.
      for (const inst of [...services, ...ioBase, ...wsBase]) if (!inst.alive) await inst.start().catch(() => undefined);
      await pool.all('teardownAll', {}, 30_000).catch(() => undefined);
    }
  }

  // Interrupted: abort() is stopping everything and exits; write nothing half-done.
  if (registry.stopping) return new Promise(() => undefined);
  if (idleCpu) scenarios.idle = { ...scenarios.idle, quiet: idleCpu };
  const results = {
    meta: {
      quick,
      repeats,
      workers,
      instances,
      redisCluster,
      commit,
      dirty,
      startedAt: new Date(started).toISOString(),
      durationSec: (Date.now() - started) / 1000,
      fdLimit,
      loadAtStart,
      notes,
      sizes: SIZES,
      machine: await machine(),
    },
    scenarios,
  };
  results.targets = evaluateTargets(results);

  mkdirSync(`${ROOT}bench/results`, { recursive: true });
  const date = new Date(started).toISOString().slice(0, 10);
  const file = `bench/results/${date}-${commit}${quick ? '-quick' : ''}${partial ? `-only-${[...only].sort().join('')}` : ''}.json`;
  const full = withHeadline(results);
  writeFileSync(`${ROOT}${file}`, `${JSON.stringify(full, null, 1)}\n`);
  if (partial) {
    // A run of some scenarios (an A/B, a profile) would leave latest.json without the others'
    // headline figures and overwrite the commit's full run: it stays a file of its own.
    log(`wrote ${file} (latest.json and docs/performance.md keep the last run of every scenario)`);
  } else {
    // The last soak is a run of its own: latest.json keeps it (with its commit) next to this run.
    const soakBefore = readLatest()?.scenarios?.soak;
    const latest = soakBefore ? { ...full, scenarios: { ...full.scenarios, soak: soakBefore } } : full;
    writeFileSync(LATEST, `${JSON.stringify(latest, null, 1)}\n`);
    writeFileSync(`${ROOT}docs/performance.md`, renderMarkdown(latest));
    log(`wrote ${file}, bench/results/latest.json and docs/performance.md`);
  }
  for (const t of results.targets)
    log(`target: ${t.label} ${t.threshold}: ${t.value ?? '–'} → ${t.met === true ? 'met' : t.met === false ? 'NOT met' : 'not evaluated'}`);
  await registry.cleanup();
  log('done');
}

/**
 * The soak: writes bench/results/<date>-<commit>-soak.json, merges its summary into latest.json
 * as scenarios.soak (everything else kept) and rewrites docs/performance.md from latest.json.
 */
async function soakRun(ctx, { deliveriesPerSec, rateSource, commit, dirty, notes, machine }) {
  const { summary, samples } = await soak(ctx, { minutes: soakMinutes, deliveriesPerSec });
  if (registry.stopping) return new Promise(() => undefined);
  const date = new Date(started).toISOString().slice(0, 10);
  const file = `bench/results/${date}-${commit}-soak.json`;
  const meta = {
    commit,
    dirty,
    startedAt: new Date(started).toISOString(),
    durationSec: (Date.now() - started) / 1000,
    workers,
    notes,
    machine: await machine(),
  };
  const head = { commit, startedAt: meta.startedAt, file, rateSource, ...summary };
  mkdirSync(`${ROOT}bench/results`, { recursive: true });
  writeFileSync(`${ROOT}${file}`, `${JSON.stringify({ commit, meta, summary: head, samples }, null, 1)}\n`);
  const latest = readLatest() ?? {};
  latest.scenarios = { ...latest.scenarios, soak: head };
  writeFileSync(LATEST, `${JSON.stringify(latest, null, 1)}\n`);
  const rendered = latest.meta && latest.targets;
  if (rendered) writeFileSync(`${ROOT}docs/performance.md`, renderMarkdown(latest));
  log(`wrote ${file}, scenarios.soak in bench/results/latest.json${rendered ? ' and docs/performance.md' : ''}`);
  for (const t of summary.targets)
    log(
      `target: soak ${t.label} ${t.threshold}: ${t.value ?? '–'} → ${t.met === true ? 'met' : t.met === false ? 'NOT met' : 'not evaluated'}`,
    );
  log(
    `soak: heap growth ${summary.heapGrowthPct ?? '–'}%, RSS growth ${summary.rssGrowthPct ?? '–'}%, lost ${summary.lost} ` +
      `(${summary.lostDeliveries} deliveries), p99 by 5-min window ${summary.p99ByWindowMs.map((x) => fmt.ms(x)).join(' / ')} ms`,
  );
  await registry.cleanup();
  log('done');
}

/**
 * --render <results.json>: re-evaluates the targets from the stored steps, rewrites the file with
 * them and the headline figures, and rewrites docs/performance.md (and latest.json when it is that run).
 */
async function renderOnly(file) {
  const results = JSON.parse(readFileSync(file, 'utf8'));
  results.targets = evaluateTargets(results);
  const full = withHeadline(results);
  writeFileSync(file, `${JSON.stringify(full, null, 1)}\n`);
  const before = readLatest();
  const soakBefore = before?.scenarios?.soak;
  const latest = soakBefore ? { ...full, scenarios: { ...full.scenarios, soak: soakBefore } } : full;
  if (before?.meta?.startedAt === results.meta.startedAt) writeFileSync(LATEST, `${JSON.stringify(latest, null, 1)}\n`);
  writeFileSync(`${ROOT}docs/performance.md`, renderMarkdown(latest));
  process.stdout.write(`${file}, docs/performance.md rewritten from ${file}\n`);
}

(render ? renderOnly(render) : main()).then(
  () => process.exit(0),
  async (err) => {
    process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
    await registry.cleanup();
    process.exit(1);
  },
);
