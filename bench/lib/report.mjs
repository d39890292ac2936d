// Turns one run's results into the target verdicts and docs/performance.md.
import { formatBatches } from './batches.mjs';
import { fmt, median, NOISY_PCT } from './measure.mjs';

const P99_LIMIT_MS = 100;
const PG_US_LIMIT = { fanout: 150, durable: 60 };
const T = { io: 'socket.io', ws: 'ws' };
const TRANSPORTS = ['io', 'ws'];
const round = (x, d = 2) => (x === null || x === undefined ? null : Math.round(x * 10 ** d) / 10 ** d);
const ratio = (a, b) => (a === null || b === null || !b ? null : round(a / b, 2));

function groupBy(list, keyOf) {
  const m = new Map();
  for (const x of list) {
    const k = keyOf(x);
    if (!m.has(k)) m.set(k, []);
    m.get(k).push(x);
  }
  return m;
}

/** Per repeat, the highest delivered/s among valid steps with p99 ≤ 100 ms; the median over repeats. */
function maxDelivered(steps, side, transport) {
  const perRepeat = [
    ...groupBy(
      steps.filter((s) => s.side === side && s.transport === transport),
      (s) => s.repeat,
    ).values(),
  ].map((rs) => {
    const ok = rs.filter((s) => s.valid && s.lat.p99 !== null && s.lat.p99 <= P99_LIMIT_MS);
    return ok.length ? Math.max(...ok.map((s) => s.deliveredPerSec)) : 0;
  });
  return { median: median(perRepeat), perRepeat };
}

/**
 * The service's maximum delivered/s at p99 ≤ 100 ms of a stored run (median of repeats), per
 * transport, and the lower of the two: what the soak takes half of.
 */
export function serviceFanoutMax(results) {
  const steps = results?.scenarios?.fanout?.steps;
  if (!steps) return null;
  const per = Object.fromEntries(TRANSPORTS.map((tr) => [tr, maxDelivered(steps, 'service', tr).median]));
  const v = Object.values(per).filter((x) => typeof x === 'number' && x > 0);
  return v.length ? { perTransport: per, lower: Math.min(...v) } : null;
}

/** CPU µs per delivery, side by side at each offered rate both sides sustained (valid, p99 ≤ 100 ms). */
function cpuRatios(steps, transport) {
  const good = steps.filter(
    (s) => s.transport === transport && s.valid && s.lat.p99 !== null && s.lat.p99 <= P99_LIMIT_MS && s.usPerDelivery !== null,
  );
  const rows = [];
  for (const [rate, rs] of groupBy(good, (s) => s.offeredPerSec)) {
    const svc = median(rs.filter((s) => s.side === 'service').map((s) => s.usPerDelivery));
    const base = median(rs.filter((s) => s.side === 'baseline').map((s) => s.usPerDelivery));
    if (svc !== null && base !== null) rows.push({ rate, service: svc, baseline: base, ratio: ratio(svc, base) });
  }
  return rows.sort((a, b) => a.rate - b.rate);
}

/**
 * The highest Postgres µs per stored message over the valid service steps: each step (transport,
 * mode, offered rate) as the median of its repeats, like the tables.
 */
function pgPerMessageMax(steps, keep = () => true) {
  const good = steps.filter((s) => s.side === 'service' && s.valid && typeof s.pgCpuUsPerMessage === 'number' && keep(s));
  let worst = null;
  for (const rs of groupBy(good, (s) => `${s.transport}|${s.mode ?? ''}|${s.offeredPerSec}`).values()) {
    const value = median(rs.map((s) => s.pgCpuUsPerMessage));
    if (worst === null || value > worst.value) worst = { value, step: rs[0], runs: rs.length };
  }
  return worst;
}

function pgTarget(scenario, steps, keep, label, where) {
  const limit = PG_US_LIMIT[scenario];
  const w = pgPerMessageMax(steps, keep);
  return {
    id: `${scenario}-pg-cpu`,
    label,
    threshold: `≤ ${limit} µs`,
    value: w ? round(w.value, 1) : null,
    detail: w
      ? `highest at ${where(w.step)}, median of ${w.runs} run(s); Postgres CPU of the bench database's backends ÷ messages stored in the window`
      : 'no valid service step with the figure',
    met: w ? w.value <= limit : null,
  };
}

export function evaluateTargets(results) {
  const targets = [];
  const quick = results.meta.quick;
  const add = (t) => targets.push({ ...t, met: t.met ?? null });
  const fo = results.scenarios.fanout;
  if (fo?.steps) {
    for (const tr of TRANSPORTS) {
      const rows = cpuRatios(fo.steps, tr);
      const r = round(median(rows.map((x) => x.ratio)));
      add({
        id: 'fanout-cpu',
        transport: tr,
        label: `fan-out CPU µs per delivery, ${T[tr]} (service ÷ baseline)`,
        threshold: '≤ 1.15×',
        value: r,
        detail: rows.length
          ? `median over ${rows.length} common step(s): ${rows.map((x) => `${fmt.k(x.rate)}/s ${fmt.us(x.service)} vs ${fmt.us(x.baseline)} µs = ${x.ratio}×`).join('; ')}`
          : 'no step that both sides sustained validly with p99 ≤ 100 ms',
        met: r === null ? null : r <= 1.15,
      });
      const s = maxDelivered(fo.steps, 'service', tr);
      const b = maxDelivered(fo.steps, 'baseline', tr);
      const rr = ratio(s.median, b.median);
      const top = Math.max(...fo.config.steps);
      const under = (side) =>
        fo.steps.some(
          (x) => x.side === side && x.transport === tr && x.offeredPerSec === top && x.lat.p99 !== null && x.lat.p99 <= P99_LIMIT_MS,
        );
      const serviceUnbounded = under('service');
      const baselineUnbounded = under('baseline');
      const baselineCapped = fo.steps.some((x) => x.side === 'baseline' && x.transport === tr && !x.valid);
      add({
        id: 'fanout-max',
        transport: tr,
        label: `max delivered/s at p99 ≤ 100 ms, ${T[tr]} (service ÷ baseline)`,
        threshold: '≥ 0.85×',
        value: rr,
        detail:
          `service ${fmt.k(s.median)}/s, baseline ${fmt.k(b.median)}/s (median of repeats)` +
          (baselineCapped
            ? '; the baseline reached steps the load generator could not drive validly, so its maximum is a lower bound'
            : '') +
          (baselineUnbounded ? `; the baseline kept p99 ≤ ${P99_LIMIT_MS} ms up to the last step, so its maximum is a lower bound` : ''),
        // Both sides still under the limit at the last step: the steps say nothing about either maximum.
        met: rr === null || (serviceUnbounded && baselineUnbounded) ? null : rr >= 0.85,
      });
    }
    add(
      pgTarget(
        'fanout',
        fo.steps,
        () => true,
        'Postgres CPU µs per stored message, fan-out (highest valid step)',
        (s) => `${T[s.transport]} ${fmt.k(s.offeredPerSec)} delivered/s offered (${fmt.k(s.sendsPerSec)} sends/s)`,
      ),
    );
  }
  const du = results.scenarios.durable;
  if (du?.steps) {
    for (const [mode, goal, label] of [
      ['many', 15000, 'many rooms'],
      ['hot', 3000, 'one hot room'],
    ]) {
      for (const tr of TRANSPORTS) {
        const svc = du.steps.filter((s) => s.side === 'service' && s.transport === tr && s.mode === mode);
        const byRepeat = [...groupBy(svc, (s) => s.repeat).values()];
        const perRepeat = byRepeat.map((rs) => Math.max(0, ...rs.filter((s) => s.valid).map((s) => s.ackedPerSec)));
        const best = median(perRepeat);
        // Saturated: the last step of a repeat acked under 90% of its offered rate (or p99 > 1 s).
        const saturated = byRepeat.some((rs) => {
          const last = rs.at(-1);
          return last.ackedPerSec < 0.9 * last.offeredPerSec || last.ack.p99 === null || last.ack.p99 > 1000;
        });
        const topStep = Math.max(...du.config[mode]);
        add({
          id: `durable-${mode}`,
          transport: tr,
          label: `durable acked sends/s, ${label}, ${T[tr]}`,
          threshold: `≥ ${goal.toLocaleString('en')}/s`,
          value: best,
          detail:
            `highest acked/s of a valid step, median of repeats: ${perRepeat.map((x) => fmt.k(x)).join(', ')}` +
            (saturated ? ' (the service saturated)' : `; not saturated: the steps end at ${fmt.k(topStep)}/s`),
          met: best === null ? null : best >= goal ? true : saturated ? false : null,
        });
        const half = goal / 2;
        const configured = du.config[mode].includes(half);
        const at = svc.filter((s) => s.offeredPerSec === half);
        const p99 = round(median(at.map((s) => s.ack.p99)), 1);
        add({
          id: `durable-${mode}-p99`,
          transport: tr,
          label: `ack p99 at ${half.toLocaleString('en')}/s, ${label}, ${T[tr]}`,
          threshold: '≤ 25 ms',
          value: p99,
          detail: !configured
            ? `not measured: ${quick ? 'the quick run' : 'this run'} has no ${half}/s step`
            : at.length
              ? `p99 ${at.map((s) => fmt.ms(s.ack.p99)).join(', ')} ms; acked ${at.map((s) => fmt.k(s.ackedPerSec)).join(', ')}/s`
              : `never reached: the service saturated below ${half}/s`,
          met: !configured ? null : at.length ? p99 <= 25 : false,
        });
      }
    }
    // Below 1,000/s a batch holds a message or two and the per-transaction cost is the figure.
    add(
      pgTarget(
        'durable',
        du.steps,
        (s) => s.offeredPerSec >= 1000,
        'Postgres CPU µs per stored message, durable sends (highest valid step ≥ 1,000/s)',
        (s) => `${s.mode === 'many' ? 'many rooms' : 'one hot room'}, ${T[s.transport]} ${fmt.k(s.offeredPerSec)}/s`,
      ),
    );
  }
  const id = results.scenarios.idle;
  if (id?.runs) {
    for (const [tr, limit] of [
      ['io', 1.2],
      ['ws', 1.3],
    ]) {
      const s = median(id.runs.filter((r) => r.side === 'service' && r.transport === tr).map((r) => r.rssPerConn));
      const b = median(id.runs.filter((r) => r.side === 'baseline' && r.transport === tr).map((r) => r.rssPerConn));
      const sh = median(id.runs.filter((r) => r.side === 'service' && r.transport === tr).map((r) => r.heapPerConn));
      const bh = median(id.runs.filter((r) => r.side === 'baseline' && r.transport === tr).map((r) => r.heapPerConn));
      const r = ratio(s, b);
      const rh = ratio(sh, bh);
      add({
        id: 'idle-memory',
        transport: tr,
        label: `idle memory per connection, ${T[tr]} (service ÷ baseline; RSS and heap after GC)`,
        threshold: `≤ ${limit}× (both)`,
        value: r === null || rh === null ? null : `RSS ${r}×, heap ${rh}×`,
        ratios: { rss: r, heap: rh },
        detail: `RSS ${fmt.kb(s)} vs ${fmt.kb(b)}; heap after GC ${fmt.kb(sh)} vs ${fmt.kb(bh)} per connection`,
        met: r === null || rh === null ? null : r <= limit && rh <= limit,
      });
    }
  }
  if (id?.quiet) {
    const q = id.quiet;
    add({
      id: 'idle-instance-cpu',
      label: `service instance CPU with no client (${q.seconds} s before the scenarios, the busier instance)`,
      threshold: '< 1% of a core',
      value: q.instanceCpuPct,
      detail: `${q.perInstance.map((p) => `${p.name} ${p.pct}%`).join(', ')}; host ${fmt.pct(q.hostBusyPct)} busy meanwhile`,
      met: q.instanceCpuPct < 1,
    });
  }
  const connecting = (id?.runs ?? []).filter((r) => r.side === 'service' && typeof r.connectCpu?.pgBenchPct === 'number');
  if (connecting.length) {
    const worst = connecting.reduce((a, r) => (r.connectCpu.pgBenchPct > a.connectCpu.pgBenchPct ? r : a));
    add({
      id: 'idle-connect-pg',
      label: `Postgres CPU while ${id.config.connections} idle clients connect and join (bench database, the worse run)`,
      threshold: '< 10% of a core',
      value: worst.connectCpu.pgBenchPct,
      detail: connecting
        .map((r) => `${T[r.transport]} r${r.repeat}: ${r.connectCpu.pgBenchPct}% over ${fmt.n1(r.connectCpu.seconds)} s`)
        .join('; '),
      met: worst.connectCpu.pgBenchPct < 10,
    });
  }
  const st = results.scenarios.storm;
  if (st?.runs) {
    for (const tr of TRANSPORTS) {
      const svc = st.runs.filter((r) => r.side === 'service' && r.transport === tr);
      const base = st.runs.filter((r) => r.side === 'baseline' && r.transport === tr);
      const s = svc.every((r) => r.allBack) ? median(svc.map((r) => r.allBackMs)) : null;
      const b = base.every((r) => r.allBack) ? median(base.map((r) => r.allBackMs)) : null;
      const lost = svc.reduce((a, r) => a + r.lostMessages, 0);
      const r = ratio(s, b);
      add({
        id: 'storm',
        transport: tr,
        label: `reconnect storm, ${T[tr]}: time until all back and caught up (service ÷ baseline connect storm), 0 lost`,
        threshold: '≤ 1.5×, 0 lost',
        value: r,
        lost,
        detail:
          `service ${s === null ? 'not all back' : `${s} ms`}, baseline ${b === null ? 'not all back' : `${b} ms`} (median of repeats); ` +
          `service lost ${lost} acked message(s) over ${svc.length} run(s)`,
        met: s === null || svc.length === 0 ? false : r === null ? null : r <= 1.5 && lost === 0,
      });
    }
  }
  return targets;
}

/**
 * The headline figures the issue asks latest.json to carry, taken from the evaluated targets (so
 * from the measured steps, never typed in): per-transport fan-out ratios; for the durable sends,
 * idle memory and the storm, the worst of the two transports, with both kept alongside.
 */
export function headline(results) {
  const find = (id, tr) => results.targets.find((t) => t.id === id && t.transport === tr);
  const num = (id, tr) => find(id, tr)?.value ?? null;
  const both = (f) => ({ socketio: f('io'), ws: f('ws') });
  const worst = (pick, values) => {
    const v = values.filter((x) => typeof x === 'number');
    return v.length ? pick(...v) : null;
  };
  const fanout = {
    ...both((tr) => ({ cpuPerDeliveryRatio: num('fanout-cpu', tr), maxDeliveredRatio: num('fanout-max', tr) })),
    pgCpuUsPerMessage: num('fanout-pg-cpu'),
  };
  const many = both((tr) => num('durable-many', tr));
  const hot = both((tr) => num('durable-hot', tr));
  const p99 = { manyRooms: both((tr) => num('durable-many-p99', tr)), hotRoom: both((tr) => num('durable-hot-p99', tr)) };
  const mem = both((tr) => {
    const r = find('idle-memory', tr)?.ratios;
    return r ? Math.max(r.rss ?? 0, r.heap ?? 0) : null;
  });
  const storm = both((tr) => num('storm', tr));
  const lost = ['io', 'ws'].map((tr) => find('storm', tr)?.lost).filter((x) => typeof x === 'number');
  return {
    fanout,
    durable: {
      manyRoomsAckedPerSec: worst(Math.min, Object.values(many)),
      hotRoomAckedPerSec: worst(Math.min, Object.values(hot)),
      ackP99Ms: worst(Math.max, [...Object.values(p99.manyRooms), ...Object.values(p99.hotRoom)]),
      pgCpuUsPerMessage: num('durable-pg-cpu'),
      byTransport: { ackedPerSec: { manyRooms: many, hotRoom: hot }, ackP99Ms: p99 },
    },
    idle: {
      socketioMemRatio: mem.socketio,
      wsMemRatio: mem.ws,
      instanceCpuPct: num('idle-instance-cpu'),
      connectPgCpuPct: num('idle-connect-pg'),
    },
    storm: { ratio: worst(Math.max, Object.values(storm)), lost: lost.length ? lost.reduce((a, b) => a + b, 0) : null, byTransport: storm },
  };
}

/** Adds `commit` and the headline figures (see headline) to a results object, next to the raw data. */
export function withHeadline(results) {
  const h = headline(results);
  const scenarios = { ...results.scenarios };
  for (const [name, fields] of Object.entries(h)) if (scenarios[name]) scenarios[name] = { ...scenarios[name], ...fields };
  return { commit: results.meta.commit, ...results, scenarios };
}

const verdict = (m) => (m === true ? '**met**' : m === false ? '**not met**' : 'not evaluated');
const validCell = (rs) => {
  const bad = rs.filter((r) => !r.valid).length;
  return bad === 0 ? 'valid' : `**invalid** ${bad}/${rs.length}`;
};

/** The CPU columns; `mark` (a footnote sign) goes with the host figure. */
function cpuCells(rs, mark = '') {
  const m = (f) => median(rs.map((r) => f(r.cpu)));
  return [
    fmt.pct(m((c) => c.targetPct)),
    `${fmt.pct(m((c) => c.genMaxWorkerPct))} / ${fmt.pct(m((c) => c.genPct))}`,
    `${fmt.pct(m((c) => c.pgPct))} (${fmt.pct(m((c) => c.pgBenchPct))})`,
    fmt.pct(m((c) => c.redisPct)),
    `${fmt.pct(m((c) => c.hostBusyPct))} / ${fmt.n1(m((c) => c.load1))}${mark}`,
  ];
}

/**
 * "†" when a run of the row had the host over NOISY_PCT busy in the quiet second before it, with
 * the figures written down in `notes` for the footnote under the table.
 */
function noisyMark(rs, what, notes) {
  const noisy = rs.filter((r) => r.noisyBefore);
  if (!noisy.length) return '';
  notes.push(
    `${what}: ${noisy.map((r) => `host ${fmt.pct(r.quietBefore.hostBusyPct)} busy (the bench's own processes ${fmt.pct(r.quietBefore.benchPct)})`).join(', ')}`,
  );
  return ' †';
}

function noisyFootnote(notes) {
  if (!notes.length) return [];
  return [
    `† In the second before the step (or run) began, while the bench sent nothing, the host was over ${NOISY_PCT}% busy: other work (or the bench's own processes still finishing what came before) shared the cores. ${notes.join('; ')}.`,
    '',
  ];
}

/** Postgres µs per stored message and the group commit's batches: medians over the repeats. */
function storageCells(rs) {
  if (rs[0].side !== 'service') return ['–', '–'];
  const m = (f) => median(rs.map(f));
  const b = rs.map((r) => r.batches).filter((x) => x && !x.error);
  const batches = b.length
    ? formatBatches({
        transactions: median(b.map((x) => x.transactions)),
        perTx: median(b.map((x) => x.perTx)),
        p50: median(b.map((x) => x.p50)),
        p90: median(b.map((x) => x.p90)),
        max: median(b.map((x) => x.max)),
      })
    : '–';
  return [fmt.us(m((r) => r.pgCpuUsPerMessage)), batches];
}

const STORAGE_HEAD = ['Postgres µs/msg (bench db)', 'append transactions (batches)'];

function table(header, rows) {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

const CPU_HEAD = ['instances CPU', 'generator max proc / total', 'Postgres all (bench db)', 'Redis', 'host busy / load1'];

function fanoutSection(fo) {
  const c = fo.config;
  const lines = [
    '## a. Fan-out',
    '',
    `${c.clients} clients over ${c.instances ?? 2} instances (each room split across ${(c.instances ?? 2) > 2 ? 'a pair of them' : 'both'})${c.redisCluster ? ', the service on a Redis Cluster of 3 masters' : ''}, rooms of ${c.roomSize}, ${c.senders} senders (members of their rooms), ` +
      `${c.warmMs / 1000} s warm-up then ${c.measureMs / 1000} s measured per step. Offered = delivered messages/s asked for ` +
      `(send rate × ${c.roomSize}). Latency is publish→receive (send time in the body, one monotonic clock). ` +
      `A side stops after two steps in a row with p99 over ${P99_LIMIT_MS} ms (or one delivering under half the offered rate); ` +
      `"max delivered/s" is the highest step with p99 ≤ ${P99_LIMIT_MS} ms. Service: every message stored in Postgres and acked; ` +
      `baseline: broadcast only. Figures are medians over the repeats that ran the step; CPU in % of one core.`,
    '',
  ];
  for (const tr of TRANSPORTS) {
    const steps = fo.steps.filter((s) => s.transport === tr);
    if (!steps.length) continue;
    lines.push(`### ${T[tr]}`, '');
    const rows = [];
    const notes = [];
    const rates = [...new Set(steps.map((s) => s.offeredPerSec))].sort((a, b) => a - b);
    for (const rate of rates) {
      for (const side of ['service', 'baseline']) {
        const rs = steps.filter((s) => s.offeredPerSec === rate && s.side === side);
        if (!rs.length) continue;
        const m = (f) => median(rs.map(f));
        rows.push([
          fmt.k(rate),
          side,
          fmt.k(m((r) => r.deliveredPerSec)),
          fmt.ms(m((r) => r.lat.p50)),
          fmt.ms(m((r) => r.lat.p95)),
          fmt.ms(m((r) => r.lat.p99)),
          fmt.ms(m((r) => r.ack.p99)),
          fmt.us(m((r) => r.usPerDelivery)),
          String(m((r) => r.lost) ?? 0),
          ...storageCells(rs),
          side === 'service' ? fmt.n1(m((r) => r.relayCopiesPerMessage)) : '–',
          ...cpuCells(rs, noisyMark(rs, `${fmt.k(rate)}/s ${side}`, notes)),
          `${validCell(rs)} (${rs.length} run${rs.length > 1 ? 's' : ''})`,
        ]);
      }
    }
    lines.push(
      table(
        [
          'offered/s',
          'side',
          'delivered/s',
          'p50 ms',
          'p95 ms',
          'p99 ms',
          'ack p99 ms',
          'CPU µs/delivery',
          'lost',
          ...STORAGE_HEAD,
          'Redis copies/msg',
          ...CPU_HEAD,
          'step',
        ],
        rows,
      ),
      '',
      ...noisyFootnote(notes),
    );
  }
  return lines.join('\n');
}

function durableSection(du) {
  const c = du.config;
  const lines = [
    '## b. Durable sends',
    '',
    `${c.connections} sending connections over 2 instances (joined to no room, so this is the write path alone), ` +
      `open-loop at the offered rate, at most ${c.maxInflightPerWorker} unanswered sends per load process (the rest is shed), ` +
      `${c.warmMs / 1000} s warm-up then ${c.measureMs / 1000} s measured. "many": ${c.rooms} rooms round robin; "hot": every send into one room. ` +
      `acked/s counts acks arriving in the window; ack latency is for sends made in it. The service stops after the step where it acked under 90% of the offered rate ` +
      `(or p99 > 1 s); the baseline (no storage) runs the same steps as a reference. CPU "instances" is the two service (or baseline) processes.`,
    '',
  ];
  for (const mode of ['many', 'hot']) {
    for (const tr of TRANSPORTS) {
      const steps = du.steps.filter((s) => s.transport === tr && s.mode === mode);
      if (!steps.length) continue;
      lines.push(`### ${mode === 'many' ? 'Many rooms' : 'One hot room'}, ${T[tr]}`, '');
      const rows = [];
      const notes = [];
      const rates = [...new Set(steps.map((s) => s.offeredPerSec))].sort((a, b) => a - b);
      for (const rate of rates) {
        for (const side of ['service', 'baseline']) {
          const rs = steps.filter((s) => s.offeredPerSec === rate && s.side === side);
          if (!rs.length) continue;
          const m = (f) => median(rs.map(f));
          const errs = rs.reduce((a, r) => a + Object.values(r.errors).reduce((x, y) => x + y, 0), 0);
          rows.push([
            fmt.k(rate),
            side,
            fmt.k(m((r) => r.ackedPerSec)),
            fmt.ms(m((r) => r.ack.p50)),
            fmt.ms(m((r) => r.ack.p99)),
            fmt.us(m((r) => r.usPerSend)),
            `${m((r) => r.shed) ?? 0} / ${errs}`,
            ...storageCells(rs),
            ...cpuCells(rs, noisyMark(rs, `${fmt.k(rate)}/s ${side}`, notes)),
            `${validCell(rs)} (${rs.length} run${rs.length > 1 ? 's' : ''})`,
          ]);
        }
      }
      lines.push(
        table(
          [
            'offered/s',
            'side',
            'acked/s',
            'ack p50 ms',
            'ack p99 ms',
            'CPU µs/send',
            'shed / errors',
            ...STORAGE_HEAD,
            ...CPU_HEAD,
            'step',
          ],
          rows,
        ),
        '',
        ...noisyFootnote(notes),
      );
    }
  }
  return lines.join('\n');
}

function idleSection(id) {
  const c = id.config;
  const rows = [];
  const notes = [];
  for (const tr of TRANSPORTS) {
    for (const side of ['service', 'baseline']) {
      const rs = id.runs.filter((r) => r.transport === tr && r.side === side);
      if (!rs.length) continue;
      const m = (f) => median(rs.map(f));
      rows.push([
        T[tr],
        side,
        String(m((r) => r.connections)),
        fmt.kb(m((r) => r.rssPerConn)),
        fmt.kb(m((r) => r.heapPerConn)),
        side === 'service' ? `${fmt.kb(m((r) => r.asIsRssPerConn))} / ${fmt.kb(m((r) => r.asIsHeapPerConn))}` : '–',
        `${fmt.n1(m((r) => r.connectAndJoinMs / 1000))} s`,
        ...cpuCells(
          rs.map((r) => ({ cpu: r.connectCpu })),
          noisyMark(rs, `${T[tr]} ${side}`, notes),
        ),
        `${validCell(rs)} (${rs.length} run${rs.length > 1 ? 's' : ''})`,
      ]);
    }
  }
  return [
    '## c. Idle connections',
    '',
    `${c.connections} connections over 2 instances, each joined to one room (rooms of ${c.roomSize}); memory is the growth from before connecting to ` +
      `${c.settleMs / 1000} s after the last join, divided by the connections, both snapshots after a forced full GC: the baselines through ` +
      `\`GET /stats\`, the service through a bench-only preload (\`--expose-gc --import bench/lib/gc-hook.mjs\`, SIGUSR2 → \`gc()\`; src/ is unchanged). ` +
      `RSS from /proc/<pid>/status for all. The CPU columns cover the connecting phase; validity is judged on the quiet window in which memory is read. The verdict needs both RSS and heap within the limit. The service's own \`/metrics\` figures (process_resident_memory_bytes, nodejs_heap_size_used_bytes, no forced GC) are shown as "as-is".`,
    '',
    table(
      [
        'transport',
        'side',
        'connections',
        'RSS / conn',
        'heap / conn (after GC)',
        'as-is /metrics RSS / heap per conn',
        'connect + join',
        ...CPU_HEAD.map((h) => `${h} (connecting)`),
        'run',
      ],
      rows,
    ),
    '',
    ...noisyFootnote(notes),
    ...(id.quiet
      ? [
          `With no client at all, over ${id.quiet.seconds} s before the first scenario, the service instances used ` +
            `${id.quiet.perInstance.map((p) => `${p.pct}%`).join(' and ')} of a core (${id.quiet.perInstance.map((p) => p.name).join(', ')}); ` +
            `Postgres (bench db) ${id.quiet.pgBenchPct}%, host ${fmt.pct(id.quiet.hostBusyPct)} busy.`,
          '',
        ]
      : []),
  ].join('\n');
}

function stormSection(st) {
  const c = st.config;
  const rows = [];
  const notes = [];
  for (const tr of TRANSPORTS) {
    for (const side of ['service', 'baseline']) {
      const rs = st.runs.filter((r) => r.transport === tr && r.side === side);
      if (!rs.length) continue;
      const m = (f) => median(rs.map(f));
      rows.push([
        T[tr],
        side,
        String(m((r) => r.clients)),
        rs.every((r) => r.allBack)
          ? `${m((r) => r.allBackMs)} ms`
          : `**not all back** (${rs.map((r) => `${r.reconnected}/${r.clients}`).join(', ')})`,
        `${fmt.ms(m((r) => r.backP50Ms))} / ${fmt.ms(m((r) => r.backP99Ms))}`,
        String(m((r) => r.ackedMessages)),
        `${rs.map((r) => r.lostMessages).join(', ')} / ${rs.map((r) => r.lostDeliveries).join(', ')}`,
        side === 'service' ? 'yes (sinceSeq + history)' : 'no (nothing stored)',
        ...cpuCells(rs, noisyMark(rs, `${T[tr]} ${side}`, notes)).slice(1),
        `${validCell(rs)} (${rs.length} run${rs.length > 1 ? 's' : ''})`,
      ]);
    }
  }
  return [
    '## d. Reconnect storm',
    '',
    `${c.clients} clients, all on instance 1, in rooms of ${c.roomSize}; one sender per room on instance 2 sends ${c.perSenderRate}/s throughout. ` +
      `Instance 1 is killed (SIGKILL); each client reconnects to instance 2 after a random delay in [0, ${c.jitterMs}] ms (retrying with backoff) and rejoins its room; ` +
      `on the service it then recovers what it missed (\`room.join { sinceSeq }\`, history pages while \`hasMore\`). "all back" is the time from the kill until the last client ` +
      `finished; for the baseline this is its connect storm (rejoin only). Lost = acked messages that a member neither received live nor recovered ` +
      `(distinct messages / member deliveries, per run). CPU is over the storm window.`,
    '',
    table(
      [
        'transport',
        'side',
        'clients',
        'all back',
        'p50 / p99 ms',
        'acked msgs',
        'lost msgs / deliveries',
        'recovers',
        'generator max proc / total',
        'Postgres all (bench db)',
        'Redis',
        'host busy / load1',
        'run',
      ],
      rows,
    ),
    '',
    ...noisyFootnote(notes),
  ].join('\n');
}

function soakSection(so) {
  const c = so.config;
  const rows = so.latencyByWindow.map((w) => [
    `${fmt.n1(w.fromMin)}–${fmt.n1(w.toMin)}`,
    String(w.n),
    fmt.ms(w.p50),
    fmt.ms(w.p99),
    fmt.ms(w.max),
  ]);
  return [
    '## e. Soak',
    '',
    `\`npm run bench -- --soak ${so.minutes}\` on commit \`${so.commit}\` (${so.startedAt}, ${so.ranMinutes} min ran; raw samples in \`${so.file}\`): ` +
      `2 service instances, ${c.clients} clients (socket.io and ws alternating, each room spread over both instances) in rooms of ${c.roomSize}, one sender per room, ` +
      `${fmt.k(so.deliveriesPerSec)} deliveries/s offered (${so.rateSource}). Every ${c.cycleEveryMs / 1000} s, ${Math.round(c.cycleFraction * 100)}% of the other members ` +
      `cycle at a random moment of the period: by turns leave and rejoin, or drop the connection and reconnect to the other instance; both catch up with ` +
      `\`room.join { sinceSeq }\` and history pages. Every ${c.sampleEveryMs / 1000} s: RSS (/proc), heapUsed (\`/metrics\`) and CPU of both instances; ` +
      `every ${so.growthWindows.gcEverySec} s heap after a forced GC (gc-hook; it held the instances ` +
      `${so.perInstance.map((p) => `${fmt.ms(p.gcMsMean)} ms`).join(' / ')} on average, pauses that the latency below includes). ` +
      `Host ${fmt.pct(so.hostBusyPctMean)} busy on average. Growth = mean of the last ${so.growthWindows.windowMin} min ` +
      `against the first ${so.growthWindows.windowMin} min after a ${so.growthWindows.warmupMin}-min warm-up. Lost = acked messages that a member still joined at the end ` +
      `got neither live nor on rejoining (${so.membersChecked} members checked, ${so.membersLeftOut} left out as not rejoined; ${so.ackedMessages} acked messages, ` +
      `${so.expectedDeliveries} member deliveries expected, ${so.lostDeliveries} missing).`,
    '',
    table(
      ['target', 'threshold', 'value', 'verdict'],
      so.targets.map((t) => [t.label, t.threshold, t.value === null ? '–' : String(t.value), verdict(t.met)]),
    ),
    '',
    `Per instance: ${so.perInstance
      .map(
        (p) =>
          `${p.name} heap after GC ${p.heapGrowthPct ?? '–'}% (heapUsed as-is ${p.heapUsedGrowthPct ?? '–'}%), RSS ${p.rssGrowthPct ?? '–'}%`,
      )
      .join('; ')}.`,
    '',
    'Delivery latency (publish→receive, live deliveries) by 5-minute window of send time:',
    '',
    table(['minutes', 'deliveries', 'p50 ms', 'p99 ms', 'max ms'], rows),
    '',
    ...(so.notes?.length ? [...so.notes.map((n) => `- ${n}`), ''] : []),
  ].join('\n');
}

export function renderMarkdown(results) {
  const { meta, targets } = results;
  const mm = meta.machine;
  const lines = [
    '# Performance',
    '',
    '<!-- Written by `npm run bench` (bench/run.mjs); edits are overwritten by the next run. -->',
    '',
    'How fast the service is, measured in one run against what a user would otherwise pick: a bare socket.io server with ' +
      '`@socket.io/redis-adapter` (`bench/baselines/socketio-baseline.mjs`) and a bare `ws` server with Redis pub/sub ' +
      '(`bench/baselines/ws-baseline.mjs`), both with the same rooms and broadcast and no persistence. Every figure of the service includes ' +
      'storing the message in Postgres before the ack; the baselines store nothing.',
    '',
    '**Run it:** `npm run bench` (full: 3 repeats, about 35 minutes) or `npm run bench -- --quick` (a smoke of about two minutes: small sizes, 1 repeat). It builds the service, ' +
      'creates a scratch database `bench_<random>` on the local Postgres (dropped at the end), starts ' +
      `${meta.instances ?? 2} service instances${meta.redisCluster ? ' (on a Redis Cluster of its own)' : ''}, ${meta.instances ?? 2} of each baseline and ` +
      `${meta.workers} load-generator processes, runs the scenarios with service and baseline interleaved step by step, and writes ` +
      '`bench/results/<date>-<commit>.json` (`…-quick.json` for a quick run), `bench/results/latest.json` and this file. Options: `--only a,b,c,d` (such a run writes only `…-only-<keys>.json`), ' +
      '`--repeats N`, `--workers N`, `--profile <dir>` (V8 CPU profiles of the service instances; `node bench/lib/profile-summary.mjs <dir>/*.cpuprofile` ' +
      'summarises them), `--instances N`, `--redis-cluster` (bench/README.md); `--render <results.json>` rewrites this file from a stored run. `--soak <minutes>` (at most 240; `--soak-rate N`) is a separate run: ' +
      'see "e. Soak" and the method below.',
    '',
    '**Where the time goes and what stands in the way of the targets not met:** [performance-analysis.md](performance-analysis.md) (profiles, written by hand).',
    '',
    `**This run:** ${meta.quick ? '**quick** (reduced sizes, 1 repeat: indicative only, targets below are not a verdict on the full sizes)' : 'full'}, ` +
      `${meta.startedAt}, commit \`${meta.commit}\`${meta.dirty ? ' (work tree with uncommitted changes)' : ''}, ${Math.round(meta.durationSec)} s, ` +
      `${meta.repeats} repeat(s).`,
    '',
    `**Machine:** ${mm.cpus} × ${mm.cpuModel}, ${mm.memGiB} GiB, Linux ${mm.kernel}, Node ${mm.node}, Postgres ${mm.postgres}, Redis ${mm.redis}; ` +
      `open-file limit ${meta.fdLimit}. Everything (service, baselines, load generator, Postgres, Redis) shares these cores, so each figure comes with ` +
      `the CPU of the load generator, Postgres and Redis and the host's load. Host load average at start: ${meta.loadAtStart.l1} / ${meta.loadAtStart.l5} / ${meta.loadAtStart.l15}.`,
    '',
    '**Validity:** a step where one load-generator process used more than 85% of a core (or could not keep the send pace) is marked **invalid**: ' +
      'past that point the generator measures itself. Invalid steps are shown but not used for the verdicts. ' +
      '"Postgres all" is every Postgres process (other databases on this server included); "(bench db)" only the backends of the bench database. Redis is the one shared server.',
    '',
  ];
  if (meta.notes.length) lines.push('**Notes on this run:**', '', ...meta.notes.map((n) => `- ${n}`), '');
  lines.push(
    '## Targets',
    '',
    table(
      ['target', 'threshold', 'value', 'verdict', 'detail'],
      targets.map((t) => [t.label, t.threshold, t.value === null ? '–' : String(t.value), verdict(t.met), t.detail]),
    ),
    '',
  );
  const s = results.scenarios;
  if (s.fanout?.steps) lines.push(fanoutSection(s.fanout));
  if (s.durable?.steps) lines.push(durableSection(s.durable));
  if (s.idle?.runs) lines.push(idleSection(s.idle));
  if (s.storm?.runs) lines.push(stormSection(s.storm));
  if (s.soak?.latencyByWindow) lines.push(soakSection(s.soak));
  for (const [name, sc] of Object.entries(s)) if (sc?.error) lines.push(`**Scenario ${name} failed:** \`${sc.error.split('\n')[0]}\``, '');
  lines.push(
    '## Method',
    '',
    '- CPU of any process is utime+stime from `/proc/<pid>/stat` (100 ticks/s) over the measured window, the same for the service, the baselines, the load ' +
      'generator, Postgres (`pgrep -x postgres`) and Redis (`pgrep -x redis-server`); host busy % from `/proc/stat`, load from `/proc/loadavg`. ' +
      '"CPU µs/delivery" is the two instances\' CPU in the window divided by the deliveries of messages sent in it.',
    '- "Postgres µs/msg (bench db)" is the CPU of the bench database\'s backends in the window divided by the messages stored in it: in the fan-out ' +
      'the sends made in the window (each is stored), in the durable sends the acks that arrived in it (an ack follows the COMMIT). The target figure ' +
      'is the highest over the valid service steps, each step the median of its repeats; for the durable sends only steps of 1,000/s and more.',
    '- "append transactions (batches)": the group commit\'s `chat_append_batch_size` histogram (messages per append transaction, buckets 1, 2, 4 … 512), ' +
      'read from `GET /metrics` of both instances 30 ms before and 5 ms after the window (the results keep how long each read took; a read at the start of the warm-up ' +
      "moves the instances' 5-s shared outbox-backlog query out of the window); the difference gives the transactions, messages per transaction " +
      '(mean) and the buckets holding the median, the 90th percentile and the largest transaction ("≤16" = 9 to 16 messages).',
    '- "Redis copies/msg" (fan-out): `chat_relay_messages_received_total` from the same reads, all instances together, divided by the messages ' +
      "stored in the window: how many instances' Redis subscribers received each message, the sender's own echo included. On one Redis " +
      'server every instance receives every message (it grows with --instances); on a Redis Cluster only the instances with members in the room.',
    `- Quiet host before each step: the workers get a step at once and wait 1 s before sending; over that second the host's busy % is sampled ` +
      `(/proc/stat). Above ${NOISY_PCT}% the step is marked \`noisyBefore\` in the results and "†" here, with the figure and the bench's own share of it ` +
      "(its processes and its database's backends). Idle and storm runs are sampled the same way before they start.",
    '- Idle service CPU: after the instances start and settle 2 s, and before the first scenario, 10 s with no client, % of one core per instance ' +
      "(the target takes the busier one). Postgres while connecting: the bench database's backends over the connect-and-join phase of scenario c.",
    "- Soak (`--soak <minutes>`, ≤ 240, its own run: 2 service instances, no baselines): load at half the service's maximum delivered/s at p99 ≤ 100 ms — " +
      "the lower transport's figure in `bench/results/latest.json`, or half of `--soak-rate N` (deliveries/s) when given. Heap after a forced GC is read " +
      'once a minute (a forced GC held an instance 0.1–0.5 s here), or so that each growth window holds 3 readings in a short soak; growth compares the ' +
      'means of the first and last 5 minutes after a 2-minute warm-up (shorter for soaks under 12 minutes). It writes ' +
      '`bench/results/<date>-<commit>-soak.json` and merges its summary into `latest.json` as `scenarios.soak` (a later full run keeps it there, with its own commit).',
    '- The load generator is separate processes (`bench/load/worker.mjs`), each with its own clients (socket.io-client on the websocket transport, or `ws`); ' +
      'sends are paced open-loop; latency samples go into log buckets of 1% width (p50/p95/p99 are bucket upper bounds).',
    "- Service instances run `node dist/main.js` with `NODE_ENV=test`, `LOG_LEVEL=warn`, `DB_POOL_SIZE=20` and the rate limits raised to the configuration's maxima " +
      '(`RATE_LIMIT_PER_SECOND=100000`, `RATE_LIMIT_BURST=1000000`, `RATE_LIMIT_USER_MESSAGES=10000000`, `MAX_CONNECTIONS_PER_USER=100000`, `MAX_BUFFERED_BYTES` 256 MiB); ' +
      'clients authenticate with HS256 tokens. Baselines accept any connection.',
    '- Raw results, every step of every repeat: `bench/results/latest.json`.',
    '',
  );
  return lines.join('\n');
}
