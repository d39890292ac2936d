// One load-generator process (forked by bench/load/pool.mjs). It holds groups of clients and
// runs the steps the harness asks for; every loop and wait here is bounded in count or time.
import { Histogram, nowUs } from '../lib/hist.mjs';
import { tokenFor } from '../lib/token.mjs';
import { BenchClient, inflight } from './clients.mjs';
import { countError, pace, PAD, rejoin, sleep } from './lib.mjs';
import { soakHandlers } from './soak.mjs';

const groups = new Map();

/** Runs `fn` over `items` with at most `limit` at once. */
async function eachLimited(items, limit, fn) {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  });
  await Promise.all(lanes);
}

const handlers = {
  /** Connects a group of clients (and joins each to its room, when it has one). */
  async setup({ group, kind, secret, clients, concurrency = 100, joinWithSince = false }) {
    const g = { kind, clients: [], onMessage: () => undefined };
    groups.set(group, g);
    const started = nowUs();
    const errors = {};
    let failed = 0;
    await eachLimited(clients, concurrency, async (spec) => {
      const rec = { ...spec, token: tokenFor(spec.userId, secret) };
      const c = new BenchClient(kind, spec.url, rec.token);
      c.onMessage = (m) => g.onMessage(m, rec);
      rec.client = c;
      try {
        await c.connect();
        if (spec.room) {
          const reply = await c.request('room.join', joinWithSince ? { roomId: spec.room, sinceSeq: 0 } : { roomId: spec.room });
          if (!reply.ok) throw new Error(`join: ${reply.error?.code}`);
          rec.lastSeq = reply.data?.lastSeq ?? 0;
        }
        g.clients.push(rec);
      } catch (err) {
        failed++;
        errors[err.message] = (errors[err.message] ?? 0) + 1;
        c.terminate();
      }
    });
    return { connected: g.clients.length, failed, errors, ms: (nowUs() - started) / 1000 };
  },

  async teardown({ group }) {
    const g = groups.get(group);
    if (!g) return { closed: 0 };
    g.stopped = true;
    for (const rec of g.clients) rec.client.terminate();
    groups.delete(group);
    return { closed: g.clients.length };
  },

  /**
   * Fan-out: the group's senders send to their rooms at perSenderRate; every member counts the
   * deliveries of messages sent inside the measured window and their publish→receive latency.
   */
  async fanoutStep({ group, step, perSenderRate, t0, warmMs, measureMs, minDrainMs = 300, maxDrainMs = 3000 }) {
    const g = groups.get(group);
    const tag = `s${step}`;
    const winStart = t0 + warmMs * 1000;
    const winEnd = winStart + measureMs * 1000;
    const lat = new Histogram();
    const ackLat = new Histogram();
    const st = { delivered: 0, outside: 0, stale: 0, lastRx: 0, acked: 0, ackedInWin: 0, sentInWin: 0, errors: {}, inflight: 0 };
    g.onMessage = (m) => {
      const b = m.body;
      const p = b.indexOf('|');
      const now = nowUs();
      st.lastRx = now;
      if (b.slice(0, p) !== tag) return void st.stale++;
      const t = Number(b.slice(p + 1, b.indexOf('|', p + 1)));
      if (t >= winStart && t < winEnd) {
        st.delivered++;
        lat.record(now - t);
      } else st.outside++;
    };
    const senders = g.clients.filter((r) => r.sender);
    let cmid = 0;
    const result = await pace({
      t0,
      durationUs: (warmMs + measureMs) * 1000,
      rate: perSenderRate * senders.length,
      send: (i) => {
        const s = senders[i % senders.length];
        const t = nowUs();
        const inWin = t >= winStart && t < winEnd;
        if (inWin) st.sentInWin++;
        st.inflight++;
        s.client.call(
          'message.send',
          { roomId: s.room, body: `${tag}|${t}|${PAD.slice(0, 60)}`, clientMsgId: `f${process.pid}-${step}-${++cmid}` },
          (r) => {
            st.inflight--;
            if (!r.ok) return countError(st.errors, r);
            st.acked++;
            if (inWin) {
              st.ackedInWin++;
              ackLat.record(nowUs() - t);
            }
          },
        );
      },
    });
    // Drain: at least minDrainMs, then until acks are in and deliveries have stopped arriving.
    const endBy = nowUs() + maxDrainMs * 1000;
    await sleep(minDrainMs);
    while (nowUs() < endBy && (st.inflight > 0 || nowUs() - st.lastRx < 250_000)) await sleep(50);
    g.onMessage = () => undefined;
    return { ...result, ...st, lat: lat.toJSON(), ackLat: ackLat.toJSON(), senders: senders.length };
  },

  /**
   * Durable sends: every client of the group sends (rate per second for this worker) to one of
   * `rooms` (round robin) or all into rooms[0]; acks are counted by arrival time in the window,
   * ack latency for sends made inside it. At most maxInflight unanswered sends; beyond, shed.
   */
  async durableStep({ group, rooms, rate, t0, warmMs, measureMs, maxInflight = 4000, maxDrainMs = 15000, step }) {
    const g = groups.get(group);
    const winStart = t0 + warmMs * 1000;
    const winEnd = winStart + measureMs * 1000;
    const ackLat = new Histogram();
    const st = { ackedInWin: 0, ackedOfWin: 0, sentInWin: 0, shed: 0, acked: 0, errors: {}, inflight: 0 };
    const clients = g.clients;
    const offset = Math.floor(Math.random() * rooms.length);
    let cmid = 0;
    const result = await pace({
      t0,
      durationUs: (warmMs + measureMs) * 1000,
      rate,
      send: (i) => {
        if (st.inflight >= maxInflight) return void st.shed++;
        const c = clients[i % clients.length];
        const room = rooms[(offset + i) % rooms.length];
        const t = nowUs();
        const inWin = t >= winStart && t < winEnd;
        if (inWin) st.sentInWin++;
        st.inflight++;
        c.client.call(
          'message.send',
          { roomId: room, body: `d${step}|${t}|${PAD.slice(0, 60)}`, clientMsgId: `d${process.pid}-${step}-${++cmid}` },
          (r) => {
            st.inflight--;
            const now = nowUs();
            if (!r.ok) return countError(st.errors, r);
            st.acked++;
            if (now >= winStart && now < winEnd) st.ackedInWin++;
            if (inWin) {
              st.ackedOfWin++;
              ackLat.record(now - t);
            }
          },
        );
      },
    });
    const endBy = nowUs() + maxDrainMs * 1000;
    while (nowUs() < endBy && st.inflight > 0) await sleep(50);
    return { ...result, ...st, unfinished: st.inflight, ackLat: ackLat.toJSON() };
  },

  // ---- reconnect storm ----

  /**
   * Arms the group's members for the storm: every message.new is recorded (by the sender's
   * counter n in the body, and by seq); when the connection drops, the client reconnects to
   * `fallbackUrl` after a random delay in [0, jitterMs] (retrying with backoff), rejoins its room
   * and, if `recover`, catches up with room.join { sinceSeq } and history pages (docs/protocol.md §9).
   */
  stormArm({ group, fallbackUrl, jitterMs, recover, capacity, deadlineMs }) {
    const g = groups.get(group);
    const deadline = nowUs() + deadlineMs * 1000;
    g.storm = { lostAt: [], doneAt: [], gaveUp: 0, attempts: 0, joinErrors: {}, connectErrors: {}, overflow: 0 };
    const mark = (rec, m) => {
      const n = Number(m.body.slice(0, m.body.indexOf('|')));
      if (n >= capacity || m.seq >= capacity) return void g.storm.overflow++;
      rec.nBits[n] = 1;
      if (recover) {
        rec.seqBits[m.seq] = 1;
        while (rec.seqBits[rec.upTo + 1]) rec.upTo++;
      }
    };
    g.onMessage = (m, rec) => mark(rec, m);
    for (const rec of g.clients) {
      rec.nBits = new Uint8Array(capacity);
      rec.seqBits = new Uint8Array(capacity);
      rec.upTo = rec.lastSeq ?? 0;
      const onClose = () => {
        if (g.stopped) return;
        g.storm.lostAt.push(nowUs());
        setTimeout(reconnect, Math.random() * jitterMs);
      };
      rec.client.onClose = onClose;
      let attempt = 0;
      const reconnect = async () => {
        if (g.stopped) return;
        if (attempt++ >= 30 || nowUs() > deadline) return void g.storm.gaveUp++;
        g.storm.attempts++;
        const c = new BenchClient(g.kind, fallbackUrl, rec.token);
        c.onMessage = (m) => mark(rec, m);
        rec.client = c;
        try {
          await c.connect(10_000);
        } catch (err) {
          const reason = String(err?.message ?? err).slice(0, 80);
          g.storm.connectErrors[reason] = (g.storm.connectErrors[reason] ?? 0) + 1;
          return void setTimeout(reconnect, Math.min(2000, 50 * 2 ** attempt) * (0.5 + Math.random()));
        }
        if (g.stopped) return void c.terminate();
        c.onClose = onClose;
        const outcome = await rejoin(c, {
          room: rec.room,
          recover,
          since: () => rec.upTo,
          mark: (m) => mark(rec, m),
          errors: g.storm.joinErrors,
        });
        if (outcome === 'done') g.storm.doneAt.push(nowUs());
        else if (outcome === 'failed') g.storm.gaveUp++;
      };
    }
    return { armed: g.clients.length };
  },

  /** Waits (bounded) until every client that lost its connection is back; returns the timings. */
  async stormWait({ group, deadlineMs }) {
    const g = groups.get(group);
    const expect = g.clients.length;
    const endBy = nowUs() + deadlineMs * 1000;
    while (nowUs() < endBy && g.storm.doneAt.length + g.storm.gaveUp < expect) await sleep(25);
    return {
      lostAt: g.storm.lostAt,
      doneAt: g.storm.doneAt,
      gaveUp: g.storm.gaveUp,
      attempts: g.storm.attempts,
      joinErrors: g.storm.joinErrors,
      connectErrors: g.storm.connectErrors,
    };
  },

  /** Storm senders: each client of the group sends to its room at perSenderRate until stopped (bounded by maxMs). */
  stormSendStart({ group, perSenderRate, maxMs }) {
    const g = groups.get(group);
    g.acked = {};
    g.sendErrors = {};
    g.inflight = 0;
    const counters = new Map();
    // A sender's room is `sendRoom` (it has not joined it) or the room it joined.
    for (const rec of g.clients) rec.sendTo = rec.sendRoom ?? rec.room;
    for (const rec of g.clients) g.acked[rec.sendTo] = [];
    g.sending = pace({
      t0: nowUs() + 20_000,
      durationUs: maxMs * 1000,
      rate: perSenderRate * g.clients.length,
      stopped: () => g.stopSending,
      send: (i) => {
        const rec = g.clients[i % g.clients.length];
        const n = (counters.get(rec.sendTo) ?? 0) + 1;
        counters.set(rec.sendTo, n);
        g.inflight++;
        rec.client.call(
          'message.send',
          { roomId: rec.sendTo, body: `${n}|${nowUs()}|${PAD.slice(0, 60)}`, clientMsgId: `r${process.pid}-${n}` },
          (r) => {
            g.inflight--;
            if (r.ok) g.acked[rec.sendTo].push(n);
            else countError(g.sendErrors, r);
          },
        );
      },
    });
    return { senders: g.clients.length };
  },

  async stormSendStop({ group }) {
    const g = groups.get(group);
    g.stopSending = true;
    const endBy = nowUs() + 15_000_000;
    while (nowUs() < endBy && g.inflight > 0) await sleep(50);
    return { acked: g.acked, errors: g.sendErrors, unfinished: g.inflight };
  },

  /** Counts, per member, the acked messages of its room it neither received live nor recovered. */
  stormCheck({ group, acked }) {
    const g = groups.get(group);
    let lostDeliveries = 0;
    let clientsWithLoss = 0;
    const lostMessages = new Set();
    let expected = 0;
    for (const rec of g.clients) {
      let missing = 0;
      for (const n of acked[rec.room] ?? []) {
        expected++;
        if (!rec.nBits[n]) {
          missing++;
          lostMessages.add(`${rec.room}#${n}`);
        }
      }
      lostDeliveries += missing;
      if (missing) clientsWithLoss++;
    }
    return { expected, lostDeliveries, clientsWithLoss, lostMessages: [...lostMessages], overflow: g.storm?.overflow ?? 0 };
  },

  teardownAll() {
    for (const [name, g] of groups) {
      g.stopped = true;
      g.stopSending = true;
      for (const rec of g.clients) rec.client.terminate();
      groups.delete(name);
    }
    return {};
  },

  stats() {
    return { groups: groups.size, inflight: inflight(), memory: process.memoryUsage().rss };
  },

  ...soakHandlers(groups),
};

process.on('message', async ({ id, cmd, args }) => {
  try {
    const result = await handlers[cmd](args ?? {});
    process.send({ id, ok: true, result });
  } catch (err) {
    process.send({ id, ok: false, error: err?.stack ?? String(err) });
  }
});
// The harness is gone (even killed): leave with it.
process.on('disconnect', () => process.exit(0));
