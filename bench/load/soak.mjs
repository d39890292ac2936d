// The soak's side of a load-generator process (bench --soak): the senders of a group send for the
// whole soak while a fraction of its members cycles — leaves and rejoins, or drops its connection
// and reconnects to the other instance — and catches up with room.join { sinceSeq } and history
// pages. Every member tracks the seqs it has (SeqTracker), so at the end each acked message can be
// checked against every member still joined. Every loop and wait is bounded in count or time.
import { Histogram, nowUs } from '../lib/hist.mjs';
import { BenchClient } from './clients.mjs';
import { countError, pace, PAD, rejoin, sleep } from './lib.mjs';
import { SeqList, SeqTracker } from './seq-tracker.mjs';

async function until(cond, ms) {
  const endBy = nowUs() + ms * 1000;
  while (nowUs() < endBy && !cond()) await sleep(50);
}

export function soakHandlers(groups) {
  /** One member's cycle: leave and rejoin, or reconnect (to the other instance); then catch up. */
  async function cycleOne(g, rec, reconnect, urls) {
    const s = g.soak;
    const catchUp = (c) =>
      rejoin(c, {
        room: rec.room,
        recover: true,
        since: () => rec.tracker.upTo,
        mark: (m) => rec.tracker.mark(m.seq),
        errors: s.joinErrors,
      });
    if (!reconnect) {
      s.cycles.leaves++;
      const left = await rec.client.request('room.leave', { roomId: rec.room });
      if (!left.ok) countError(s.joinErrors, left);
      // Away long enough to miss some messages of the room.
      await sleep(500 + Math.random() * 1500);
      const outcome = await catchUp(rec.client);
      if (outcome === 'done') return;
      if (outcome === 'failed') return void (rec.gaveUp = true);
      // 'closed': the connection dropped meanwhile; reconnect below.
    }
    s.cycles.reconnects++;
    rec.client.terminate();
    await sleep(200 + Math.random() * 800);
    rec.url = urls[(urls.indexOf(rec.url) + 1) % urls.length];
    for (let attempt = 0; attempt < 10; attempt++) {
      const c = new BenchClient(g.kind, rec.url, rec.token);
      c.onMessage = (m) => g.onMessage(m, rec);
      c.onClose = () => s.onDrop(rec);
      rec.client = c;
      try {
        await c.connect(10_000);
      } catch {
        s.cycles.connectFailures++;
        await sleep(Math.min(2000, 100 * 2 ** attempt));
        continue;
      }
      const outcome = await catchUp(c);
      if (outcome === 'done') return;
      if (outcome === 'failed') break;
    }
    rec.gaveUp = true;
  }

  return {
    /**
     * Starts the soak of a group: its senders send `perSenderRate` each from t0 for durationMs;
     * every `cycle.everyMs` a `cycle.fraction` of its other members is picked to cycle, each at a
     * random instant of the period (alternately leave/rejoin and reconnect). Live deliveries'
     * publish→receive latency goes into one histogram per `windowMs` of send time.
     */
    soakStart({ group, t0, durationMs, perSenderRate, windowMs, cycle }) {
      const g = groups.get(group);
      const s = {
        acked: new Map(),
        ackedTotal: {},
        errors: {},
        joinErrors: {},
        inflight: 0,
        windows: [],
        cycles: { leaves: 0, reconnects: 0, connectFailures: 0 },
        drops: 0,
        // Members picked to cycle (scheduled or under way), and the timers of those not started yet.
        active: new Set(),
        timers: new Map(),
        stop: false,
      };
      g.soak = s;
      const start = (rec, reconnect) => {
        s.active.add(rec);
        cycleOne(g, rec, reconnect, cycle.urls).finally(() => s.active.delete(rec));
      };
      // A connection that drops by itself (not cycled) reconnects at once, as a client would.
      s.onDrop = (rec) => {
        s.drops++;
        if (!s.stop && !s.active.has(rec)) start(rec, true);
      };
      for (const rec of g.clients) {
        rec.tracker = new SeqTracker(rec.lastSeq ?? 0);
        rec.client.onClose = () => s.onDrop(rec);
      }
      g.onMessage = (m, rec) => {
        rec.tracker.mark(m.seq);
        const b = m.body;
        if (!b.startsWith('k|')) return;
        const t = Number(b.slice(2, b.indexOf('|', 2)));
        (s.windows[Math.max(0, Math.floor((t - t0) / (windowMs * 1000)))] ??= new Histogram()).record(nowUs() - t);
      };
      const senders = g.clients.filter((r) => r.sender);
      for (const rec of senders) {
        s.acked.set(rec.room, new SeqList());
        s.ackedTotal[rec.room] = 0;
      }
      s.sending = pace({
        t0,
        durationUs: durationMs * 1000,
        rate: perSenderRate * senders.length,
        stopped: () => s.stop,
        send: (i) => {
          const rec = senders[i % senders.length];
          s.inflight++;
          rec.client.call(
            'message.send',
            { roomId: rec.room, body: `k|${nowUs()}|${PAD.slice(0, 60)}`, clientMsgId: `${group}-${process.pid}-${i}` },
            (r) => {
              s.inflight--;
              if (!r.ok) return countError(s.errors, r);
              s.acked.get(rec.room).push(r.data.seq);
              s.ackedTotal[rec.room]++;
            },
          );
        },
      });
      const members = g.clients.filter((r) => !r.sender);
      let turn = 0;
      const pick = () => {
        if (s.stop) return;
        const free = members.filter((r) => !s.active.has(r) && !r.gaveUp);
        const n = Math.min(free.length, Math.round(members.length * cycle.fraction));
        for (let k = 0; k < n; k++) {
          const j = k + Math.floor(Math.random() * (free.length - k));
          [free[k], free[j]] = [free[j], free[k]];
          const rec = free[k];
          const reconnect = turn++ % 2 === 1;
          s.active.add(rec);
          const timer = setTimeout(() => {
            s.timers.delete(timer);
            start(rec, reconnect);
          }, Math.random() * cycle.everyMs);
          s.timers.set(timer, rec);
        }
      };
      s.picker = setInterval(pick, cycle.everyMs);
      setTimeout(pick, Math.max(0, (t0 - nowUs()) / 1000));
      return { senders: senders.length, members: members.length };
    },

    soakProgress({ group }) {
      const s = groups.get(group).soak;
      const acked = Object.values(s.ackedTotal).reduce((a, b) => a + b, 0);
      return { acked, errors: s.errors, cycles: s.cycles, drops: s.drops, cycling: s.active.size };
    },

    /**
     * Stops sending and cycling; waits (bounded) for the acks and the cycles under way. A member
     * whose cycle has not finished by then is not "still joined": it is left out of the check.
     */
    async soakStop({ group }) {
      const g = groups.get(group);
      const s = g.soak;
      s.stop = true;
      clearInterval(s.picker);
      for (const [timer, rec] of s.timers) {
        clearTimeout(timer);
        s.active.delete(rec);
      }
      s.timers.clear();
      const sending = await s.sending;
      await until(() => s.inflight === 0, 15_000);
      await until(() => s.active.size === 0, 60_000);
      for (const rec of s.active) rec.gaveUp = true;
      return {
        ...sending,
        acked: Object.values(s.ackedTotal).reduce((a, b) => a + b, 0),
        unfinished: s.inflight,
        errors: s.errors,
        joinErrors: s.joinErrors,
        cycles: s.cycles,
        drops: s.drops,
        gaveUp: g.clients.filter((r) => r.gaveUp).length,
        windows: s.windows.map((h) => (h ? h.toJSON() : null)),
      };
    },

    /** Per room, the lowest seq above which some member of this group may miss messages. */
    soakFloors({ group }) {
      const floors = {};
      for (const rec of groups.get(group).clients) {
        if (rec.gaveUp) continue;
        floors[rec.room] = Math.min(floors[rec.room] ?? Infinity, rec.tracker.floor());
      }
      return floors;
    },

    /** The acked seqs of this group's senders above each room's floor, and every room's acked total. */
    soakAcked({ group, floors }) {
      const s = groups.get(group).soak;
      const acked = {};
      for (const [room, list] of s.acked) acked[room] = list.above(floors[room] ?? 0);
      return { acked, totals: s.ackedTotal };
    },

    /** Counts, per member still joined, the acked messages of its room it has not got (live or recovered). */
    soakCheck({ group, acked, totals }) {
      const g = groups.get(group);
      let expected = 0;
      let lostDeliveries = 0;
      let clientsWithLoss = 0;
      let checked = 0;
      const lostMessages = new Set();
      for (const rec of g.clients) {
        if (rec.gaveUp) continue;
        checked++;
        expected += totals[rec.room] ?? 0;
        let missing = 0;
        for (const seq of acked[rec.room] ?? []) {
          if (rec.tracker.has(seq)) continue;
          missing++;
          lostMessages.add(`${rec.room}#${seq}`);
        }
        lostDeliveries += missing;
        if (missing) clientsWithLoss++;
      }
      return { checked, expected, lostDeliveries, clientsWithLoss, lostMessages: [...lostMessages] };
    },
  };
}
