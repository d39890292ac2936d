// Fails when the modules of src import each other in a cycle (type-only imports count too: the
// layers must read one way). Uses the TypeScript the project builds with, so no extra package.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..', 'src');
const files = readdirSync(root, { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.ts'))
  .map((f) => join(root, f));

const imports = new Map();
for (const file of files) {
  const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  imports.set(
    file,
    importedFiles
      .map((i) => i.fileName)
      .filter((spec) => spec.startsWith('.'))
      .map((spec) => resolve(dirname(file), spec).replace(/\.js$/, '.ts')),
  );
}

const cycles = [];
const state = new Map(); // file → 'open' while on the path, 'done' after
const path = [];
function visit(file) {
  state.set(file, 'open');
  path.push(file);
  for (const next of imports.get(file) ?? []) {
    if (!imports.has(next)) continue;
    if (state.get(next) === 'open') cycles.push([...path.slice(path.indexOf(next)), next]);
    else if (!state.has(next)) visit(next);
  }
  path.pop();
  state.set(file, 'done');
}
for (const file of files) if (!state.has(file)) visit(file);

for (const cycle of cycles) console.error(`import cycle: ${cycle.map((f) => relative(root, f)).join(' → ')}`);
if (cycles.length) process.exit(1);
console.log(`no import cycles among ${files.length} modules of src`);
