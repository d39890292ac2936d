#!/usr/bin/env node
// Summarises V8 .cpuprofile files (from `npm run bench -- --profile <dir>`): self time by package
// (or by the service's own source directory) and the heaviest functions, so docs/performance.md
// can say where the time goes without opening DevTools.
//   node bench/lib/profile-summary.mjs <file.cpuprofile>... [--top N]
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const topAt = args.indexOf('--top');
const top = topAt >= 0 ? Number(args[topAt + 1]) : 30;
const files = args.filter((a, i) => a.endsWith('.cpuprofile') && i !== topAt + 1);
if (files.length === 0) {
  process.stderr.write('usage: profile-summary.mjs <file.cpuprofile>... [--top N]\n');
  process.exit(2);
}

/** Where a frame's code lives: an npm package, the service's own src area, node internals, or V8. */
function area(url, name) {
  if (!url) return name.startsWith('(') ? name : '(native)';
  const pkg = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (pkg) return pkg[1];
  const own = url.match(/\/dist\/([^/]+)\//);
  if (own) return `src/${own[1]}`;
  if (url.startsWith('node:')) return 'node:' + url.slice(5).split('/')[0];
  return url;
}

const byArea = new Map();
const byFn = new Map();
let total = 0;
for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const deltas = profile.timeDeltas;
  for (let i = 0; i < profile.samples.length; i++) {
    const us = deltas[i + 1] ?? 0;
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + us);
  }
  for (const [id, us] of self) {
    const { callFrame: f } = nodes.get(id);
    const name = f.functionName || '(anonymous)';
    if (name === '(idle)') continue;
    total += us;
    const a = area(f.url, name);
    byArea.set(a, (byArea.get(a) ?? 0) + us);
    const key = `${name}  ${f.url ? `${f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')}:${f.lineNumber + 1}` : ''}`;
    byFn.set(key, (byFn.get(key) ?? 0) + us);
  }
}

const pct = (us) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
const rows = (m, n) =>
  [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, us]) => `${pct(us)}  ${k}`)
    .join('\n');
process.stdout.write(
  `busy (non-idle) CPU in ${files.length} profile(s): ${(total / 1e6).toFixed(1)} s\n\nby area\n${rows(byArea, top)}\n\n`,
);
process.stdout.write(`by function (self time)\n${rows(byFn, top)}\n`);
