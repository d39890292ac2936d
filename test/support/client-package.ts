import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from './instance.js';

const run = promisify(execFile);
const CLIENT_DIR = join(PROJECT_ROOT, 'client');

export interface PackedClient {
  /** A directory outside the repository, with the tarball installed as node_modules/@chat-service/client and nothing else. */
  dir: string;
  /** The package's root inside `dir`. */
  root: string;
  /** The paths npm put in the tarball, relative to the package root. */
  files: string[];
  manifest: Record<string, any>;
  remove(): Promise<void>;
}

/** `npm pack` of client/ (its prepack builds it), unpacked where no socket.io-client can be resolved. */
export async function packClient(): Promise<PackedClient> {
  const dir = await mkdtemp(join(tmpdir(), 'chat-client-pkg-'));
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: CLIENT_DIR });
  const [{ filename, files }] = JSON.parse(stdout.slice(stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  await run('tar', ['xzf', join(dir, filename), '-C', dir]);
  const root = join(dir, 'node_modules', '@chat-service', 'client');
  await mkdir(join(dir, 'node_modules', '@chat-service'), { recursive: true });
  await rename(join(dir, 'package'), root);
  const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as Record<string, any>;
  return { dir, root, files: files.map((f) => f.path), manifest, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Runs `source` as an ES module inside the unpacked package's directory, so that it imports
 * '@chat-service/client' as an installed user would; it gets the ws package's URL as argv[2] (Node
 * 20 has no global WebSocket) and prints one JSON line, which is returned.
 */
export async function runInPackage(pkg: PackedClient, source: string, args: string[]): Promise<any> {
  const file = join(pkg.dir, 'app.mjs');
  await writeFile(file, source);
  const wsUrl = pathToFileURL(createRequire(import.meta.url).resolve('ws')).href;
  const { stdout } = await run(process.execPath, [file, wsUrl, ...args], { cwd: pkg.dir, timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}
