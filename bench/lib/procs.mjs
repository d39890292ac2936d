// CPU, memory and load figures from /proc, the same way for every process measured.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { cpus } from 'node:os';

export const CLK_TCK = 100;

/** utime+stime of a pid in clock ticks, or null when it is gone. */
export function cpuTicks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return null;
  }
}

/** VmRSS in bytes, or null. */
export function rssBytes(pid) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)\s+kB/m);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export function pgrep(name) {
  try {
    return execFileSync('pgrep', ['-x', name], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function cmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/** Busy and total jiffies of the whole host, from /proc/stat. */
export function hostTicks() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = v[3] + (v[4] || 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

export function loadavg() {
  const [l1, l5, l15] = readFileSync('/proc/loadavg', 'utf8').split(' ').map(Number);
  return { l1, l5, l15 };
}

/**
 * Samples a set of named process groups at the start and end of a window and turns the
 * difference into % of one core. Groups are functions returning pids, evaluated at each sample,
 * so processes that appear during the window (Postgres backends) are included.
 */
export class CpuProbe {
  constructor(groups) {
    this.groups = groups;
  }

  sample() {
    const at = process.hrtime.bigint();
    const ticks = {};
    for (const [name, pidsOf] of Object.entries(this.groups)) {
      const per = {};
      for (const pid of pidsOf()) {
        const t = cpuTicks(pid);
        if (t !== null) per[pid] = t;
      }
      ticks[name] = per;
    }
    return { at, ticks, host: hostTicks() };
  }

  /** { group: { pct, cpuMs, perPid: {pid: pct} }, host: { busyPct, load1 }, seconds } */
  diff(a, b) {
    const seconds = Number(b.at - a.at) / 1e9;
    const out = { seconds };
    for (const name of Object.keys(this.groups)) {
      const perPid = {};
      let total = 0;
      for (const [pid, t1] of Object.entries(b.ticks[name])) {
        const t0 = a.ticks[name][pid];
        // A pid new in the window (a Postgres backend) counts from zero.
        const d = t1 - (t0 ?? 0);
        total += d;
        perPid[pid] = round1(((d / CLK_TCK) * 100) / seconds);
      }
      out[name] = { pct: round1(((total / CLK_TCK) * 100) / seconds), cpuMs: (total / CLK_TCK) * 1000, perPid };
    }
    const busy = b.host.busy - a.host.busy;
    const total = b.host.total - a.host.total;
    out.host = { busyPct: round1(total > 0 ? (busy / total) * 100 : 0), cores: cpus().length, load1: loadavg().l1 };
    return out;
  }
}

/** Postgres processes: all of the server, and the backends serving the bench database. */
export function postgresPids() {
  return pgrep('postgres');
}

export function postgresBackendsOf(database) {
  return () => postgresPids().filter((pid) => cmdline(pid).includes(` ${database} `));
}

export function redisPids() {
  return pgrep('redis-server');
}

export function round1(x) {
  return Math.round(x * 10) / 10;
}

export function listDir(path) {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}
