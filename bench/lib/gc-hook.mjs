// Preloaded into the service processes by the bench only (node --expose-gc --import this file
// dist/main.js); src/ is untouched. On SIGUSR2 it runs a full GC and writes process.memoryUsage()
// to $BENCH_GC_DIR/<pid>.json, so the service's heap can be measured after a forced GC exactly
// like the baselines' GET /stats. It does nothing else.
import { renameSync, writeFileSync } from 'node:fs';

const dir = process.env.BENCH_GC_DIR;
if (dir && typeof global.gc === 'function') {
  process.on('SIGUSR2', () => {
    // gcMs: how long the forced collections held the event loop (the soak weighs that cost).
    const started = performance.now();
    global.gc();
    global.gc();
    const gcMs = performance.now() - started;
    const body = JSON.stringify({ pid: process.pid, at: Date.now(), gcMs, memory: process.memoryUsage() });
    // write then rename: the reader never sees half a file
    writeFileSync(`${dir}/${process.pid}.json.tmp`, body);
    renameSync(`${dir}/${process.pid}.json.tmp`, `${dir}/${process.pid}.json`);
  });
}
