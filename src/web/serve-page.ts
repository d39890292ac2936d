import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { Response } from 'express';

/** The repository (or image) root: dist/web/serve-page.js is two levels below it. */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PAGE_DIR = join(ROOT, 'public');
const CLIENT_DIR = join(ROOT, 'client', 'dist');

/**
 * The chat page at `/` as static files (no build server at run time): public/ at the root, the
 * client library's ESM build under /client/, and socket.io-client's browser ESM bundle under
 * /vendor/socket.io-client/ (the page's import map points the bare `socket.io-client` there).
 * Unknown paths fall through to Nest's routes and its 404. Call before listen.
 */
export function servePage(app: NestExpressApplication): void {
  const headers = pageHeaders();
  const common = { redirect: false, fallthrough: true, setHeaders: (res: Response) => headers.forEach((v, k) => res.setHeader(k, v)) };
  app.useStaticAssets(PAGE_DIR, { ...common, index: 'index.html' });
  app.useStaticAssets(CLIENT_DIR, { ...common, prefix: '/client/', index: false });
  app.useStaticAssets(socketIoClientDist(), { ...common, prefix: '/vendor/socket.io-client/', index: false });
}

function socketIoClientDist(): string {
  return join(dirname(createRequire(import.meta.url).resolve('socket.io-client/package.json')), 'dist');
}

/**
 * Defence in depth for the page: scripts only from this origin plus the inline import map (by its
 * hash), no plugins, no framing. Message bodies are rendered as text anyway.
 */
function pageHeaders(): Map<string, string> {
  const index = join(PAGE_DIR, 'index.html');
  const importMap = existsSync(index) ? /<script type="importmap">([\s\S]*?)<\/script>/.exec(readFileSync(index, 'utf8'))?.[1] : undefined;
  const mapHash = importMap === undefined ? '' : ` 'sha256-${createHash('sha256').update(importMap).digest('base64')}'`;
  return new Map([
    [
      'Content-Security-Policy',
      `default-src 'self'; script-src 'self'${mapHash}; connect-src 'self'; img-src 'self' data:; style-src 'self'; ` +
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    ],
    ['X-Content-Type-Options', 'nosniff'],
    ['Referrer-Policy', 'no-referrer'],
  ]);
}
