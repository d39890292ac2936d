// `npm start` and `npm run dev`: the service for development. It reads ./.env when there is one
// (variables already set win, as with `node --env-file`), turns the name sign-in on unless a real
// key source or production is configured (the sign-in signs with the published development secret
// only, and the service refuses it beside a real key), and runs the built dist/main.js. With
// --watch, tsc rebuilds src/ and client/src/ on every save and node restarts the service on each
// rebuild (dist/ and client/dist/ must exist: `npm run dev` builds first).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { devSignInDefault } from './dev-sign-in.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const watch = process.argv.includes('--watch');

if (existsSync('.env')) process.loadEnvFile('.env');
const env = process.env;
env.DEV_SIGN_IN ??= devSignInDefault(env);

if (!watch) {
  await import(main);
} else {
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
  const children = [
    ...['tsconfig.build.json', 'client/tsconfig.json'].map((project) =>
      spawn(process.execPath, [tsc, '-p', project, '--watch', '--preserveWatchOutput'], { cwd: root, stdio: 'inherit' }),
    ),
    spawn(process.execPath, ['--watch-path', `${root}dist`, '--watch-preserve-output', main], { env, stdio: 'inherit' }),
  ];
  const stop = () => {
    for (const child of children) child.kill('SIGTERM');
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  // One of them gone (a compiler crashed, the service failed to start): stop the rest with it.
  for (const child of children) child.once('exit', stop);
}
