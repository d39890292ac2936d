// Writes client/src/wire.ts, the client package's copy of the protocol's types (src/chat/wire.ts),
// so the client is published with its own sources and never copies a type by hand. With --check
// (npm run lint) it only fails when the copy is stale.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const source = new URL('../src/chat/wire.ts', import.meta.url);
const copy = new URL('../client/src/wire.ts', import.meta.url);
const text = readFileSync(source, 'utf8');

// The client compiles it alone, for browsers too: types only, nothing it would have to resolve.
const offending = text.split('\n').filter((line) => /^\s*import\b|^export\s+(const|let|function|class|enum)\b/.test(line));
if (offending.length) {
  console.error(`src/chat/wire.ts must hold types only; found:\n${offending.join('\n')}`);
  process.exit(1);
}

const wanted = `// Generated from src/chat/wire.ts by \`npm run wire-types\`: edit that file, not this one.\n\n${text}`;
if (process.argv.includes('--check')) {
  if (!existsSync(copy) || readFileSync(copy, 'utf8') !== wanted) {
    console.error('client/src/wire.ts is not the copy of src/chat/wire.ts: run npm run wire-types');
    process.exit(1);
  }
  console.log('client/src/wire.ts matches src/chat/wire.ts');
} else {
  writeFileSync(copy, wanted);
}
