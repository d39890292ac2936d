/// <reference lib="dom" />
// Driving the chat page at `/` in Debian's Chromium with playwright-core, through the data-testid
// hooks of docs/page.md only. Shared by the browser tests.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { DEV_JWT_SECRET } from '../../src/config/config.schema.js';
import { clusterEnv, PROJECT_ROOT, startInstance, UNLIMITED_RATES, waitUntilReady, type Instance } from './instance.js';
import { tokenFor } from './tokens.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = join(PROJECT_ROOT, 'test-artifacts', 'browser-page');
/** Without the background-networking flags Chromium keeps dialling Google's hosts, which this network refuses. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
export const WAIT_MS = 15_000;
/** The instances run with the development secret (the name sign-in needs it), so tests' own tokens use it too. */
export const DEV_KEY = { secret: DEV_JWT_SECRET };
/** Why the browser tests are skipped here, if they are: no Chromium, or CHROMIUM_PATH set empty to leave them out. */
export const NO_CHROMIUM =
  CHROMIUM === ''
    ? 'CHROMIUM_PATH is empty: browser tests left out'
    : !existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM} (apt-get install chromium)`;
/** The main list's message elements, and the thread panel's (the same message may be in both). */
export const MAIN = '[data-testid="messages"] > [data-testid="message"]';
export const THREAD = '[data-testid="thread"] [data-testid="message"]';

export type Transport = 'socket.io' | 'ws';

export interface Shown {
  seq: number;
  sender: string;
  text: string;
}

/** A page with what it did that a page must never do: dialogs (an executed `alert`) and uncaught errors. */
export interface ChatPage {
  page: Page;
  dialogs: string[];
  errors: string[];
}

/**
 * The environment of an instance the page runs on. The page's name sign-in (POST /dev/token) needs
 * DEV_SIGN_IN and signs with the development secret only; some tests send a few hundred messages quickly.
 */
export function pageInstanceEnv(databaseUrl: string, prefix: string, port?: number): Record<string, string> {
  return {
    ...clusterEnv(databaseUrl, prefix),
    ...UNLIMITED_RATES,
    DEV_SIGN_IN: 'true',
    JWT_SECRET: DEV_JWT_SECRET,
    ...(port ? { PORT: String(port) } : {}),
  };
}

/** An instance again on the port it had, where a page keeps trying to reconnect. */
export async function restartOn(name: string, port: number, env: Record<string, string>): Promise<Instance> {
  const started = await startInstance(name, { ...env, PORT: String(port) }, { waitReady: false });
  const inst: Instance = { ...started, port, url: `http://127.0.0.1:${port}` };
  await waitUntilReady(inst);
  return inst;
}

/** playwright-core starts Chromium with a new empty profile directory of its own. */
export async function launchChromium(): Promise<{ browser: Browser; context: BrowserContext }> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  return { browser, context };
}

export async function openChatPage(ctx: BrowserContext, inst: Instance): Promise<ChatPage> {
  const page = await ctx.newPage();
  const chat: ChatPage = { page, dialogs: [], errors: [] };
  page.on('dialog', (d) => {
    chat.dialogs.push(d.message());
    void d.dismiss();
  });
  page.on('pageerror', (e) => chat.errors.push(e.message));
  page.setDefaultTimeout(WAIT_MS);
  await page.goto(inst.url);
  return chat;
}

export async function signIn({ page }: ChatPage, user: string, transport: Transport): Promise<void> {
  await page.getByTestId('token').fill(await tokenFor(user, DEV_KEY));
  await page.getByTestId('transport').selectOption(transport);
  await page.getByTestId('connect').click();
  await waitForState(page, 'OPEN');
}

export const waitForState = (page: Page, state: string) =>
  page.waitForFunction((s) => document.querySelector('[data-testid="state"]')?.textContent === s, state);

export async function joinRoom(page: Page, roomId: string, user: string): Promise<void> {
  await page.getByTestId('room').fill(roomId);
  await page.getByTestId('join').click();
  await waitForPresence(page, user);
}

export const waitForPresence = (page: Page, user: string) =>
  page.waitForFunction(
    (u) => [...document.querySelectorAll('[data-testid="presence"] > [data-user]')].some((e) => (e as HTMLElement).dataset.user === u),
    user,
  );

/** The main list's messages. */
export const shown = (page: Page): Promise<Shown[]> =>
  page.$$eval(MAIN, (els) =>
    els.map((e) => ({
      seq: Number((e as HTMLElement).dataset.seq),
      sender: (e as HTMLElement).dataset.sender ?? '',
      text: e.textContent ?? '',
    })),
  );

export const waitForBodies = (page: Page, bodies: string[]) =>
  page.waitForFunction(
    ({ want, main }) => {
      const texts = [...document.querySelectorAll(main)].map((e) => e.textContent ?? '');
      return want.every((b) => texts.some((t) => t.includes(b)));
    },
    { want: bodies, main: MAIN },
  );

/**
 * Waits until an element matches `selector` (with `text` in it, when given), or none does with
 * `gone`. Polled every frame, where locator.waitFor polls at growing intervals up to a second.
 */
export const until = (page: Page, selector: string, { text, gone = false }: { text?: string; gone?: boolean } = {}) =>
  page.waitForFunction(
    ({ selector, text, gone }) =>
      [...document.querySelectorAll(selector)].some((e) => text === undefined || (e.textContent ?? '').includes(text)) !== gone,
    { selector, text, gone },
  );

export const screenshot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
