// The reads of room.join after a reconnect (openRoom, the access re-check, the messages after a seq),
// 5,000 rejoins in waves of 500 as a reconnect storm brings them, through the store of a built tree:
// the CPU per rejoin of this process and of the Postgres backends serving it (from /proc), and the
// wall time. Against the machine's shared server on a database of its own, dropped after.
//   node bench/pg/rejoin.mjs [dist directory, default ./dist]     (WAVES=10 by default)
import 'reflect-metadata';
import { execSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
const dist = new URL(process.argv[2] ?? 'dist', `file://${process.cwd()}/`).pathname.replace(/\/$/, '');
const { DataSource } = await import('typeorm');
const { dataSourceOptions } = await import(`${dist}/persistence/data-source-options.js`);
const { applyMigrations } = await import(`${dist}/persistence/migration-runner.js`);
const { TypeOrmChatStore } = await import(`${dist}/persistence/typeorm-chat.store.js`);
const db = `rejoin_${process.pid}`;
execSync(`psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE ${db}"`);
const url = `postgres://postgres@127.0.0.1:5432/${db}`;
try {
  await applyMigrations(url);
  const ds = new DataSource(dataSourceOptions({ url, poolSize: 10, timeoutMs: 10000 }));
  await ds.initialize();
  const store = new TypeOrmChatStore(ds, 10000, 0);
  const ROOMS = 100, PER = 50, WAVE = 500, WAVES = Number(process.env.WAVES ?? 10);
  for (let r = 0; r < ROOMS; r++)
    await Promise.all(Array.from({ length: 30 }, (_, i) => store.append({ roomId: `r${r}`, senderId: 's', body: `m${i}`, clientMsgId: `c${r}-${i}`, parentSeq: null, mentions: [] }, { trusted: true, createRoom: true }, () => undefined)));
  const pgPids = async () => (await ds.query(`SELECT pid FROM pg_stat_activity WHERE datname = $1`, [db])).map((r) => r.pid);
  const ticks = (pids) => pids.reduce((s, pid) => { try { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return s + Number(f[11]) + Number(f[12]); } catch { return s; } }, 0);
  const rejoin = async (r, u) => { await store.openRoom(`r${r}`, u); await store.roomAccess(`r${r}`, u); await store.page({ roomId: `r${r}`, afterSeq: 25, limit: 100 }); };
  // warm
  await Promise.all(Array.from({ length: WAVE }, (_, i) => rejoin(i % ROOMS, `u${i}`)));
  const pids = await pgPids();
  const pg0 = ticks(pids), cpu0 = process.cpuUsage(), t0 = performance.now();
  for (let w = 0; w < WAVES; w++) await Promise.all(Array.from({ length: WAVE }, (_, i) => rejoin(i % ROOMS, `u${w}-${i}`)));
  const ms = performance.now() - t0, cpu = process.cpuUsage(cpu0), pg = (ticks(pids) - pg0) * 10; // ticks of 10 ms
  const n = WAVE * WAVES;
  console.log(JSON.stringify({ dist, rejoins: n, wallMs: Math.round(ms), nodeCpuUsPerRejoin: Math.round((cpu.user + cpu.system) / n), pgCpuUsPerRejoin: Math.round((pg * 1000) / n), pgBackends: pids.length }));
  await ds.destroy();
} finally {
  execSync(`psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE ${db} WITH (FORCE)"`);
}
