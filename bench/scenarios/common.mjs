// Helpers the scenarios share: the instances of a side, group set-up over the workers, the
// measurements around a step's load.
import { batchWindow, PRIME_US } from '../lib/batches.mjs';
import { cpuWindow, quietBefore } from '../lib/measure.mjs';

export const SIDES = ['service', 'baseline'];
export const TRANSPORT_NAME = { io: 'socket.io', ws: 'ws' };

export function instancesOf(ctx, side, transport) {
  return side === 'service' ? ctx.services : ctx.baselines[transport];
}

/**
 * What a load step of a or b is measured by, besides the load's own figures: the instances' CPU
 * over the window, the host's busy time just before t0, and (the service only) the group-commit
 * batches of the window.
 */
export function measureStep(ctx, side, instances, t0, winStart, winEnd) {
  return Promise.all([
    cpuWindow(
      ctx,
      instances.map((i) => i.pid),
      winStart,
      winEnd,
    ),
    quietBefore(ctx, t0),
    side === 'service' ? batchWindow(instances, t0 + PRIME_US, winStart, winEnd) : null,
  ]);
}

/** service and baseline in turn; the order flips with each repeat so neither always goes first. */
export function sideOrder(repeat) {
  return repeat % 2 === 1 ? ['service', 'baseline'] : ['baseline', 'service'];
}

/** Connects `specs` ({worker, userId, url, room?, sender?}) on their workers; sums the outcome. */
export async function setupGroup(ctx, { group, kind, specs, concurrency = 100, joinWithSince = false }) {
  const byWorker = ctx.pool.workers.map(() => []);
  for (const s of specs) byWorker[s.worker % byWorker.length].push(s);
  const res = await ctx.pool.all(
    'setup',
    (i) => ({ group, kind, secret: ctx.secret, clients: byWorker[i], concurrency, joinWithSince }),
    300_000,
  );
  const errors = {};
  for (const r of res) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  return {
    connected: res.reduce((a, r) => a + r.connected, 0),
    failed: res.reduce((a, r) => a + r.failed, 0),
    errors,
    ms: Math.round(Math.max(...res.map((r) => r.ms))),
    perWorker: byWorker.map((b) => b.length),
  };
}

export function teardownGroup(ctx, group) {
  return ctx.pool.all('teardown', { group }, 60_000);
}

export function mergeCounts(list) {
  const out = {};
  for (const m of list) for (const [k, v] of Object.entries(m ?? {})) out[k] = (out[k] ?? 0) + v;
  return out;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
