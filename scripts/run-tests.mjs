#!/usr/bin/env node
// Runs the compiled tests with node's test runner: unit tests (src/**/*.test.js) first, then the
// end-to-end tests (test/**/*.test.js), which start real service processes one file at a time.
// --unit runs the unit tests only; --faults runs the fault suite (test/faults/*.faults.js) only.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const BUILD = '.test-build';
const unitOnly = process.argv.includes('--unit');
const faults = process.argv.includes('--faults');

function find(dir, suffix = '.test.js') {
  let out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(find(p, suffix));
    else if (name.endsWith(suffix)) out.push(p);
  }
  return out.sort();
}

const files = faults
  ? find(join(BUILD, 'test', 'faults'), '.faults.js')
  : [...find(join(BUILD, 'src')), ...(unitOnly ? [] : find(join(BUILD, 'test')))];
if (files.length === 0) {
  console.error('no compiled tests found: run tsc -p tsconfig.test.json first');
  process.exit(1);
}
const res = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=180000', ...files], { stdio: 'inherit' });
process.exit(res.status ?? 1);
