/// <reference lib="dom" />
// The chat page served at `/`, driven in Debian's Chromium by playwright-core through the
// data-testid hooks of docs/page.md: two instances on one database and Redis prefix, a page on
// each (one per transport), XSS bodies, reload, and an instance dying under a page. Screenshots
// go to test-artifacts/browser-page/ (git-ignored). Message changes (edits, deletes, reactions,
// threads, mentions, catch-up after a reconnect) run once per transport.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { connect, type TestClient } from './support/clients.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import {
  clusterEnv,
  PROJECT_ROOT,
  redisPrefix,
  startInstance,
  UNLIMITED_RATES,
  waitUntilReady,
  type Instance,
} from './support/instance.js';
import { DEV_JWT_SECRET } from '../src/config/config.schema.js';
import { tokenFor } from './support/tokens.js';

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
const WAIT_MS = 15_000;
/** The instances run with the development secret (the name sign-in needs it), so tests' own tokens use it too. */
const DEV_KEY = { secret: DEV_JWT_SECRET };
/** The main list's message elements, and the thread panel's (the same message may be in both). */
const MAIN = '[data-testid="messages"] > [data-testid="message"]';
const THREAD = '[data-testid="thread"] [data-testid="message"]';
/** More than one page of message.changes (100) happens while the page is away. */
const AWAY_MESSAGES = 105;

type Transport = 'socket.io' | 'ws';

interface Shown {
  seq: number;
  sender: string;
  text: string;
}

/** A page with what it did that a page must never do: dialogs (an executed `alert`) and uncaught errors. */
interface ChatPage {
  page: Page;
  dialogs: string[];
  errors: string[];
}

describe('the chat page (Chromium)', { skip: !existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM} (apt-get install chromium)` }, () => {
  let db: TestDatabase;
  let prefix: string;
  let A: Instance;
  let B: Instance;
  let browser: Browser;
  let context: BrowserContext;
  const clients: TestClient[] = [];

  // The scroll-back test sends a few hundred messages quickly.
  // The page's name sign-in (POST /dev/token) needs DEV_SIGN_IN and signs with the development secret only.
  const instanceEnv = (port?: number) => ({
    ...clusterEnv(db.url, prefix),
    ...UNLIMITED_RATES,
    DEV_SIGN_IN: 'true',
    JWT_SECRET: DEV_JWT_SECRET,
    ...(port ? { PORT: String(port) } : {}),
  });

  /** An instance again on the port it had, where the page keeps trying to reconnect. */
  async function restartOn(port: number, name = 'B'): Promise<Instance> {
    const started = await startInstance(name, instanceEnv(port), { waitReady: false });
    const inst: Instance = { ...started, port, url: `http://127.0.0.1:${port}` };
    await waitUntilReady(inst);
    return inst;
  }

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    db = await createTestDatabase();
    prefix = redisPrefix();
    [A, B] = await Promise.all([startInstance('A', instanceEnv()), startInstance('B', instanceEnv())]);
    // playwright-core starts Chromium with a new empty profile directory of its own.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  });

  after(async () => {
    for (const c of clients) c.close();
    await browser?.close();
    await Promise.all([A?.stop(), B?.stop()]);
    await db?.drop();
  });

  async function openPage(inst: Instance, ctx: BrowserContext = context): Promise<ChatPage> {
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

  async function signIn({ page }: ChatPage, user: string, transport: Transport): Promise<void> {
    await page.getByTestId('token').fill(await tokenFor(user, DEV_KEY));
    await page.getByTestId('transport').selectOption(transport);
    await page.getByTestId('connect').click();
    await waitForState(page, 'OPEN');
  }

  const waitForState = (page: Page, state: string) =>
    page.waitForFunction((s) => document.querySelector('[data-testid="state"]')?.textContent === s, state);

  async function joinRoom(page: Page, roomId: string, user: string): Promise<void> {
    await page.getByTestId('room').fill(roomId);
    await page.getByTestId('join').click();
    await waitForPresence(page, user);
  }

  const waitForPresence = (page: Page, user: string) =>
    page.waitForFunction(
      (u) => [...document.querySelectorAll('[data-testid="presence"] > [data-user]')].some((e) => (e as HTMLElement).dataset.user === u),
      user,
    );

  const shown = (page: Page): Promise<Shown[]> =>
    page.$$eval(MAIN, (els) =>
      els.map((e) => ({
        seq: Number((e as HTMLElement).dataset.seq),
        sender: (e as HTMLElement).dataset.sender ?? '',
        text: e.textContent ?? '',
      })),
    );

  const waitForBodies = (page: Page, bodies: string[]) =>
    page.waitForFunction(
      ({ want, main }) => {
        const texts = [...document.querySelectorAll(main)].map((e) => e.textContent ?? '');
        return want.every((b) => texts.some((t) => t.includes(b)));
      },
      { want: bodies, main: MAIN },
    );

  /** Seqs strictly ascending: seq order and no message twice. */
  function assertSeqOrder(messages: Shown[], label: string): void {
    const seqs = messages.map((m) => m.seq);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `${label}: seqs not strictly ascending: ${seqs.join(',')}`);
  }

  const screenshot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

  let alice: ChatPage;
  let bob: ChatPage;
  const ROOM = 'browser-lobby';

  it('two pages on two instances, socket.io and ws, exchange messages both ways; presence and typing show', async () => {
    alice = await openPage(A);
    bob = await openPage(B);
    await signIn(alice, 'alice', 'socket.io');
    await signIn(bob, 'bob', 'ws');
    await joinRoom(alice.page, ROOM, 'alice');
    await joinRoom(bob.page, ROOM, 'bob');
    await waitForPresence(alice.page, 'bob');
    await waitForPresence(bob.page, 'alice');

    await alice.page.getByTestId('composer').fill('hello from alice');
    await alice.page.getByTestId('composer').press('Enter');
    await waitForBodies(bob.page, ['hello from alice']);

    await bob.page.getByTestId('composer').pressSequentially('hi alice');
    await alice.page.getByText('bob is typing').waitFor();
    await bob.page.getByTestId('send').click();
    await waitForBodies(alice.page, ['hello from alice', 'hi alice']);
    await waitForBodies(bob.page, ['hi alice']);

    for (const [label, p] of [
      ['alice', alice],
      ['bob', bob],
    ] as const) {
      const messages = await shown(p.page);
      assert.deepEqual(
        messages.map((m) => m.sender),
        ['alice', 'bob'],
        `${label}: senders`,
      );
      assertSeqOrder(messages, label);
      assert.equal(await p.page.getByTestId('composer').inputValue(), '', `${label}: composer cleared`);
    }
    await screenshot(alice.page, 'alice-socket.io');
    await screenshot(bob.page, 'bob-ws');
  });

  it('renders hostile bodies as text: no element injected, no script run, no dialog', async () => {
    const bodies = ['<img src=x onerror="window.__xss=1;alert(1)">', '<script>window.__xss=2;alert(2)</script><b>bold?</b>'];
    for (const body of bodies) {
      await alice.page.getByTestId('composer').fill(body);
      await alice.page.getByTestId('send').click();
    }
    for (const p of [alice, bob]) {
      await waitForBodies(p.page, bodies);
      const texts = (await shown(p.page)).map((m) => m.text);
      for (const body of bodies)
        assert.ok(
          texts.some((t) => t.includes(body)),
          `verbatim as text: ${body}`,
        );
      const injected = await p.page.evaluate(() => ({
        elements: document.querySelectorAll('[data-testid="message"] img, [data-testid="message"] script, [data-testid="message"] b')
          .length,
        xss: (window as unknown as { __xss?: number }).__xss ?? null,
      }));
      assert.deepEqual(injected, { elements: 0, xss: null });
      assert.deepEqual(p.dialogs, []);
      assert.deepEqual(p.errors, []);
    }
    await screenshot(bob.page, 'hostile-bodies');
  });

  it('after a reload the page connects again and shows the room with its history', async () => {
    const before = await shown(bob.page);
    await bob.page.reload();
    await waitForState(bob.page, 'CLOSED');
    await signIn(bob, 'bob', 'ws');
    await joinRoom(bob.page, ROOM, 'bob');
    await waitForBodies(bob.page, ['hello from alice', 'hi alice']);
    const afterReload = await shown(bob.page);
    assert.deepEqual(
      afterReload.map((m) => [m.seq, m.sender]),
      before.map((m) => [m.seq, m.sender]),
    );
  });

  it('shows the reconnect banner while its instance is down, then recovers what was sent meanwhile in seq order', async () => {
    const page = bob.page;
    const banner = page.getByTestId('reconnect-banner');
    assert.equal(await banner.isVisible(), false, 'no banner while connected');
    // Every change of the state or the banner is checked in the page: never OPEN under the banner.
    await page.evaluate(() => {
      const w = window as unknown as { __bannerViolations: string[]; __bannerSeen: boolean };
      w.__bannerViolations = [];
      w.__bannerSeen = false;
      const state = document.querySelector('[data-testid="state"]')!;
      const bannerEl = document.querySelector('[data-testid="reconnect-banner"]') as HTMLElement;
      const check = () => {
        const visible = bannerEl.offsetWidth > 0 && bannerEl.offsetHeight > 0;
        if (visible) w.__bannerSeen = true;
        if (visible && state.textContent === 'OPEN') w.__bannerViolations.push('OPEN while the banner shows');
      };
      const observer = new MutationObserver(check);
      observer.observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
    });

    const port = B.port;
    B.proc.kill('SIGKILL');
    await B.exited;
    await banner.waitFor({ state: 'visible' });
    await waitForState(page, 'CONNECTING');
    await screenshot(page, 'reconnecting');

    // Another client sends on A while the page's instance is gone.
    const carol = await connect('io', A.url, await tokenFor('carol', DEV_KEY));
    clients.push(carol);
    await carol.ok('room.join', { roomId: ROOM });
    const meanwhile = ['while you were away 1', 'while you were away 2', 'while you were away 3'];
    for (const body of meanwhile) await carol.ok('message.send', { roomId: ROOM, body });

    B = await restartOn(port);
    await waitForState(page, 'OPEN');
    await banner.waitFor({ state: 'hidden' });
    await waitForBodies(page, meanwhile);
    const messages = await shown(page);
    assertSeqOrder(messages, 'after recovery');
    assert.deepEqual(
      messages.slice(-3).map((m) => m.sender),
      ['carol', 'carol', 'carol'],
    );
    const seen = await page.evaluate(() => {
      const w = window as unknown as { __bannerViolations: string[]; __bannerSeen: boolean };
      return { bannerSeen: w.__bannerSeen, violations: w.__bannerViolations };
    });
    assert.deepEqual(seen, { bannerSeen: true, violations: [] });
    // The page goes on working on the restarted instance.
    await page.getByTestId('composer').fill('back again');
    await page.getByTestId('composer').press('Enter');
    await waitForBodies(alice.page, ['back again']);
    assertSeqOrder(await shown(alice.page), 'alice');
    assert.deepEqual(bob.errors, []);
  });

  it('counts unread messages of other rooms in the room list and clears them when the room is shown', async () => {
    const page = alice.page;
    const SIDE = 'browser-side';
    await joinRoom(page, SIDE, 'alice');
    await joinRoom(page, ROOM, 'alice');
    const carol = clients[0];
    await carol.ok('room.join', { roomId: SIDE });
    for (const body of ['side 1', 'side 2']) await carol.ok('message.send', { roomId: SIDE, body });
    const unread = page.locator(`#rooms button[data-room="${SIDE}"] .unread`);
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === '2', `#rooms button[data-room="${SIDE}"] .unread`);
    await screenshot(page, 'unread');
    await page.locator(`#rooms button[data-room="${SIDE}"]`).click();
    await waitForBodies(page, ['side 1', 'side 2']);
    assert.equal(await unread.textContent(), '');
    await joinRoom(page, ROOM, 'alice');
  });

  it('loads older messages when scrolled to the top, in seq order, each once, and marks what it shows as read', async () => {
    const page = alice.page;
    const LONG = 'browser-long';
    const carol = clients[0];
    await carol.ok('room.join', { roomId: LONG });
    const TOTAL = 130;
    for (let i = 1; i <= TOTAL; i++) await carol.ok('message.send', { roomId: LONG, body: `old ${i}` });
    await joinRoom(page, LONG, 'alice');
    await waitForBodies(page, [`old ${TOTAL}`]);
    const count = () => page.locator(MAIN).count();
    const first = await count();
    assert.ok(first < TOTAL, `only the newest page at first (${first})`);
    for (let i = 0; i < 10 && (await count()) < TOTAL; i++) {
      const before = await count();
      await page.getByTestId('messages').evaluate((e) => e.scrollTo(0, 0));
      await page.waitForFunction(({ n, main }) => document.querySelectorAll(main).length > n, { n: before, main: MAIN });
    }
    const messages = await shown(page);
    assert.deepEqual(
      messages.map((m) => m.seq),
      Array.from({ length: TOTAL }, (_, i) => i + 1),
    );
    assert.ok(messages.every((m, i) => m.text.includes(`old ${i + 1}`)));
    // The page marked the newest message read: a second connection of alice sees nothing unread.
    const again = await connect('ws', A.url, await tokenFor('alice', DEV_KEY));
    clients.push(again);
    const deadline = Date.now() + WAIT_MS;
    let unread = -1;
    while (Date.now() < deadline && unread !== 0) {
      const { rooms } = await again.ok('rooms.list', {});
      unread = rooms.find((r: { roomId: string }) => r.roomId === LONG)?.unread ?? -1;
      if (unread !== 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(unread, 0);
    await joinRoom(page, ROOM, 'alice');
  });

  it('signs in with only a name in development, is usable from the keyboard and at phone width', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    try {
      const dana = await openPage(A, phone);
      const { page } = dana;
      // Keyboard: the sign-in controls come first, in order.
      await page.getByTestId('name').focus();
      const order: string[] = [];
      for (let i = 0; i < 3; i++) {
        await page.keyboard.press('Tab');
        order.push(await page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset.testid ?? ''));
      }
      assert.deepEqual(order, ['token', 'transport', 'connect']);

      await page.getByTestId('name').fill('dana');
      await page.getByTestId('name').press('Enter');
      await waitForState(page, 'OPEN');
      await page.getByTestId('room').fill(ROOM);
      await page.getByTestId('room').press('Enter');
      await waitForPresence(page, 'dana');
      await waitForBodies(page, ['hello from alice', 'back again']);
      await page.getByTestId('composer').fill('from a phone');
      await page.getByTestId('composer').press('Enter');
      await waitForBodies(alice.page, ['from a phone']);
      assert.equal(
        await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
        true,
        'no horizontal scrolling at phone width',
      );
      await screenshot(page, 'phone');
      assert.deepEqual(dana.errors, []);
    } finally {
      await phone.close();
    }
    await alice.page.getByTestId('composer').focus();
    await screenshot(alice.page, 'chat-page');
  });

  it('says when signing in with a name is not available (no DEV_SIGN_IN)', async () => {
    const closed = await startInstance('no-sign-in', { ...clusterEnv(db.url, prefix), NODE_ENV: 'development' });
    try {
      const chat = await openPage(closed);
      await chat.page.getByTestId('name').fill('newcomer');
      await chat.page.getByTestId('connect').click();
      await chat.page.getByRole('alert').filter({ hasText: 'not available on this server' }).waitFor();
      assert.match((await chat.page.getByRole('alert').textContent()) ?? '', /DEV_SIGN_IN=true\): paste a token/);
      assert.equal(await chat.page.getByTestId('state').textContent(), 'CLOSED');
      assert.deepEqual([chat.dialogs, chat.errors], [[], []]);
      await chat.page.close();
    } finally {
      await closed.stop();
    }
  });

  it('POST /dev/token validates the name like a user id', async () => {
    const post = (body: unknown) =>
      fetch(`${A.url}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const ok = await post({ name: 'erin' });
    assert.equal(ok.status, 200);
    const { token, userId } = (await ok.json()) as { token: string; userId: string };
    assert.equal(userId, 'erin');
    const erin = await connect('ws', A.url, token);
    clients.push(erin);
    assert.equal((await erin.waitFor('session')).userId, 'erin');
    for (const name of ['', 'system', 'x'.repeat(129), 42]) {
      const res = await post({ name });
      assert.equal(res.status, 400, JSON.stringify(name));
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'VALIDATION_FAILED');
    }
  });
  // --- message changes (docs/page.md "Message changes"), once per transport ---

  /** Sends from the page's composer and answers the seq of the element that shows it. */
  async function sendFrom(page: Page, body: string): Promise<number> {
    await page.getByTestId('composer').fill(body);
    await page.getByTestId('composer').press('Enter');
    await until(page, MAIN, { text: body });
    return page.$$eval(MAIN, (els, b) => Number((els.findLast((e) => (e.textContent ?? '').includes(b)) as HTMLElement).dataset.seq), body);
  }

  const mainSel = (seq: number, attrs = '') => `${MAIN}[data-seq="${seq}"]${attrs}`;
  const threadSel = (seq: number, attrs = '') => `${THREAD}[data-seq="${seq}"]${attrs}`;
  const inMain = (page: Page, seq: number, attrs = '') => page.locator(mainSel(seq, attrs));
  const reactionSel = (seq: number, key: string, count: number, pressed: boolean) =>
    `${mainSel(seq)} [data-testid="reaction"][data-key="${key}"][data-count="${count}"][aria-pressed="${pressed}"]`;

  /**
   * Waits until an element matches `selector` (with `text` in it, when given), or none does with
   * `gone`. Polled every frame: locator.waitFor polls at growing intervals up to a second, which
   * made each step of these tests take about a second.
   */
  const until = (page: Page, selector: string, { text, gone = false }: { text?: string; gone?: boolean } = {}) =>
    page.waitForFunction(
      ({ selector, text, gone }) =>
        [...document.querySelectorAll(selector)].some((e) => text === undefined || (e.textContent ?? '').includes(text)) !== gone,
      { selector, text, gone },
    );
  const focusedTestId = (page: Page) => page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset.testid ?? '');

  interface ShownChange {
    seq: number;
    version: number;
    deleted: boolean;
    parentSeq: number | null;
    text: string;
    reactions: string[];
    replyCount: string | null;
  }

  /** What the main list shows of each message, through the hooks only. */
  const mainState = (page: Page): Promise<ShownChange[]> =>
    page.$$eval(MAIN, (els) =>
      els.map((e) => {
        const d = (e as HTMLElement).dataset;
        return {
          seq: Number(d.seq),
          version: Number(d.version),
          deleted: d.deleted === 'true',
          parentSeq: d.parentSeq === undefined ? null : Number(d.parentSeq),
          text: e.textContent ?? '',
          reactions: [...e.querySelectorAll('[data-testid="reaction"]')].map(
            (r) => `${(r as HTMLElement).dataset.key}:${(r as HTMLElement).dataset.count}`,
          ),
          replyCount: e.querySelector('[data-testid="reply-count"]')?.textContent ?? null,
        };
      }),
    );

  /** Every stored message of a room, read fresh. */
  async function storedMessages(client: TestClient, roomId: string): Promise<any[]> {
    const all: any[] = [];
    for (let afterSeq = 0; ;) {
      const page = await client.ok('message.history', { roomId, afterSeq, limit: 100 });
      all.push(...page.messages);
      if (!page.hasMore) return all;
      afterSeq = page.messages.at(-1).seq;
    }
  }

  /** The page's main list against a fresh read: every message it shows, in its stored state. */
  function assertShowsStored(shownMessages: ShownChange[], stored: any[], label: string): void {
    const bySeq = new Map(stored.map((m) => [m.seq, m]));
    assert.ok(shownMessages.length > 0, `${label}: nothing shown`);
    for (const s of shownMessages) {
      const m = bySeq.get(s.seq);
      assert.ok(m, `${label}: #${s.seq} is not stored`);
      const want = {
        version: m.version,
        deleted: m.deletedAt !== null,
        parentSeq: m.parentSeq,
        reactions: m.reactions.map((r: { key: string; count: number }) => `${r.key}:${r.count}`),
        replyCount: m.replyCount > 0,
        body: m.deletedAt === null ? s.text.includes(m.body) : true,
      };
      const got = {
        version: s.version,
        deleted: s.deleted,
        parentSeq: s.parentSeq,
        reactions: s.reactions,
        replyCount: s.replyCount !== null && s.replyCount.includes(String(m.replyCount)),
        body: true,
      };
      assert.deepEqual(got, want, `${label}: #${s.seq}`);
    }
  }

  for (const transport of ['socket.io', 'ws'] as const) {
    const other: Transport = transport === 'ws' ? 'socket.io' : 'ws';
    const tag = transport === 'ws' ? 'ws' : 'io';
    const ED = `ed-${tag}`;
    const FAY = `fay-${tag}`;
    const ROOM_C = `changes-${tag}`;

    describe(`message changes on the page over ${transport}`, () => {
      /** The page under test runs on its own instance C, which the catch-up test kills and restarts. */
      let C: Instance;
      let ed: ChatPage;
      let fay: ChatPage;
      let edRaw: TestClient;
      let fayRaw: TestClient;

      before(async () => {
        C = await startInstance(`C-${tag}`, instanceEnv());
        ed = await openPage(C);
        fay = await openPage(A);
        await signIn(ed, ED, transport);
        await signIn(fay, FAY, other);
        await joinRoom(ed.page, ROOM_C, ED);
        await joinRoom(fay.page, ROOM_C, FAY);
        await waitForPresence(ed.page, FAY);
        edRaw = await connect('ws', A.url, await tokenFor(ED, DEV_KEY));
        fayRaw = await connect('io', A.url, await tokenFor(FAY, DEV_KEY));
        clients.push(edRaw, fayRaw);
      });

      after(async () => {
        for (const p of [ed, fay]) if (p) assert.deepEqual([p.dialogs, p.errors], [[], []], 'no dialog, no page error');
        await ed?.page.close();
        await fay?.page.close();
        await C?.stop();
      });

      it('edits its own message: the button focuses the edit input, Enter saves, Escape cancels; the other page sees version 2', async () => {
        const seq = await sendFrom(ed.page, `draft one ${tag}`);
        await until(fay.page, mainSel(seq, '[data-version="1"]'));
        assert.equal(await inMain(fay.page, seq).getByTestId('message-edit').count(), 0, "no edit button on another user's message");
        assert.equal(await inMain(fay.page, seq).getByTestId('message-delete').count(), 0);

        // From the keyboard: the edit button is a real button, and the focus moves into the message.
        await inMain(ed.page, seq).getByTestId('message-edit').focus();
        await ed.page.keyboard.press('Enter');
        assert.equal(await focusedTestId(ed.page), 'edit-input');
        const input = inMain(ed.page, seq).getByTestId('edit-input');
        assert.equal(await input.inputValue(), `draft one ${tag}`);
        await input.fill(`draft two ${tag}`);
        await input.press('Enter');
        for (const p of [ed, fay]) {
          await until(p.page, mainSel(seq, '[data-version="2"]'), { text: `draft two ${tag}` });
          assert.doesNotMatch((await inMain(p.page, seq).textContent()) ?? '', /draft one/);
        }
        assert.equal(await inMain(ed.page, seq).getByTestId('edit-input').count(), 0, 'the editor closes after saving');
        assert.equal(await focusedTestId(ed.page), 'message-edit');

        await inMain(ed.page, seq).getByTestId('message-edit').click();
        await inMain(ed.page, seq).getByTestId('edit-input').fill('never saved');
        await inMain(ed.page, seq).getByTestId('edit-input').press('Escape');
        assert.equal(await inMain(ed.page, seq).getByTestId('edit-input').count(), 0, 'Escape cancels');
        assert.equal(await inMain(ed.page, seq).getAttribute('data-version'), '2');
        assert.match((await inMain(ed.page, seq).textContent()) ?? '', new RegExp(`draft two ${tag}`));

        // An edit to a hostile body is text on both pages.
        const hostile = `<img src=x onerror="window.__xss=3;alert(3)"><b>${tag}</b>`;
        await inMain(ed.page, seq).getByTestId('message-edit').click();
        await inMain(ed.page, seq).getByTestId('edit-input').fill(hostile);
        await inMain(ed.page, seq).getByTestId('edit-input').press('Enter');
        for (const p of [ed, fay]) {
          await until(p.page, mainSel(seq, '[data-version="3"]'));
          assert.ok(((await inMain(p.page, seq).textContent()) ?? '').includes(hostile));
          assert.equal(await p.page.locator(`${MAIN} img, ${MAIN} b`).count(), 0);
        }
        await screenshot(ed.page, `edited-${tag}`);
      });

      it('deletes its own message after a confirmation: a tombstone on both pages, without body or controls', async () => {
        const seq = await sendFrom(ed.page, `to be deleted ${tag}`);
        await until(fay.page, mainSel(seq));
        await inMain(ed.page, seq).getByTestId('message-delete').click();
        assert.equal(await inMain(ed.page, seq).getAttribute('data-deleted'), null, 'nothing deleted before the confirmation');
        assert.equal(await focusedTestId(ed.page), 'confirm-delete');
        await inMain(ed.page, seq).getByTestId('confirm-delete').click();
        for (const p of [ed, fay]) {
          await until(p.page, mainSel(seq, '[data-deleted="true"][data-version="2"]'));
          const tombstone = inMain(p.page, seq);
          const text = (await tombstone.textContent()) ?? '';
          assert.match(text, /deleted/i);
          assert.doesNotMatch(text, /to be deleted/);
          for (const hook of ['reaction-add', 'message-edit', 'message-delete', 'reaction'])
            assert.equal(await tombstone.getByTestId(hook).count(), 0, `${hook} on a tombstone`);
        }
      });

      it('reacts from the picker and toggles reactions: counts on both pages, aria-pressed for the own ones', async () => {
        const seq = await sendFrom(fay.page, `react to me ${tag}`);
        const edMsg = inMain(ed.page, seq);
        const fayMsg = inMain(fay.page, seq);
        await until(ed.page, mainSel(seq));
        await edMsg.getByTestId('reaction-add').click();
        const offered = await edMsg.getByTestId('reaction-option').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.key));
        for (const key of ['+1', 'heart', 'laugh']) assert.ok(offered.includes(key), `offers ${key}: ${offered.join(',')}`);
        await edMsg.locator('[data-testid="reaction-option"][data-key="+1"]').click();
        const plusOne = (p: ChatPage, count: number, pressed: boolean) => until(p.page, reactionSel(seq, '+1', count, pressed));
        await plusOne(ed, 1, true);
        await plusOne(fay, 1, false);

        await fayMsg.locator('[data-testid="reaction"][data-key="+1"]').click();
        await plusOne(ed, 2, true);
        await plusOne(fay, 2, true);

        await edMsg.locator('[data-testid="reaction"][data-key="+1"]').click();
        await plusOne(ed, 1, false);
        await plusOne(fay, 1, true);

        await fayMsg.getByTestId('reaction-add').click();
        await fayMsg.locator('[data-testid="reaction-option"][data-key="heart"]').click();
        await until(ed.page, reactionSel(seq, 'heart', 1, false));
        await fayMsg.locator('[data-testid="reaction"][data-key="+1"]').click();
        await until(ed.page, `${mainSel(seq)} [data-testid="reaction"][data-key="+1"]`, { gone: true });
        assert.deepEqual(
          await edMsg
            .getByTestId('reaction')
            .evaluateAll((els) => els.map((e) => `${(e as HTMLElement).dataset.key}:${(e as HTMLElement).dataset.count}`)),
          ['heart:1'],
        );
        await screenshot(fay.page, `reactions-${tag}`);
      });

      it('replies in a thread: the panel shows the root and its replies (data-parent-seq), reply counts on both pages, the main list one element per message', async () => {
        const root = await sendFrom(fay.page, `thread root ${tag}`);
        await inMain(ed.page, root).getByTestId('reply').click();
        await until(ed.page, threadSel(root));
        assert.equal(await ed.page.locator(threadSel(root)).getAttribute('data-parent-seq'), null, 'the root is top-level');
        assert.equal(await focusedTestId(ed.page), 'thread-composer');
        await ed.page.getByTestId('thread-composer').fill(`first reply ${tag}`);
        await ed.page.getByTestId('thread-composer').press('Enter');
        await until(ed.page, `${THREAD}[data-parent-seq="${root}"]`, { text: `first reply ${tag}` });
        const first = ed.page.locator(`${THREAD}[data-parent-seq="${root}"]`).filter({ hasText: `first reply ${tag}` });
        const firstSeq = Number(await first.getAttribute('data-seq'));
        assert.equal(await first.getByTestId('reply').count(), 0, 'threads do not nest');

        // The other page: the root's reply count, and the reply compactly in the main list.
        await until(fay.page, `${mainSel(root)} [data-testid="reply-count"]`, { text: '1' });
        await until(fay.page, mainSel(firstSeq, `[data-parent-seq="${root}"]`), { text: `first reply ${tag}` });
        const compact = inMain(fay.page, firstSeq);
        assert.match((await compact.textContent()) ?? '', new RegExp(`thread of #${root}`));

        await inMain(fay.page, root).getByTestId('reply').click();
        await until(fay.page, threadSel(firstSeq, `[data-parent-seq="${root}"]`));
        await fay.page.getByTestId('thread-composer').fill(`second reply ${tag}`);
        await fay.page.getByTestId('thread-composer').press('Enter');
        await until(ed.page, `${THREAD}[data-parent-seq="${root}"]`, { text: `second reply ${tag}` });
        await until(ed.page, `${mainSel(root)} [data-testid="reply-count"]`, { text: '2' });
        assert.deepEqual(
          await ed.page.locator(THREAD).evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.parentSeq ?? 'root')),
          ['root', String(root), String(root)],
        );
        await screenshot(ed.page, `thread-${tag}`);

        // One main-list element per message of the room, replies included.
        const stored = await storedMessages(edRaw, ROOM_C);
        const seqs = (await shown(ed.page)).map((m) => m.seq);
        assert.deepEqual(
          seqs,
          stored.map((m) => m.seq),
        );
        await ed.page.getByTestId('thread-composer').press('Escape');
        await until(ed.page, '[data-testid="thread"][hidden]');
        assert.equal(await focusedTestId(ed.page), 'reply', 'the focus goes back to the reply button');
      });

      it('sends @mentions from the composer and shows them as mention elements, with a hostile body as text', async () => {
        const body = `hi @${FAY}, see <img src=x onerror="window.__xss=4;alert(4)"> and @nobody-${tag}`;
        const seq = await sendFrom(ed.page, body);
        const stored = (await storedMessages(fayRaw, ROOM_C)).find((m) => m.seq === seq);
        assert.deepEqual(stored.mentions, [FAY, `nobody-${tag}`]);
        for (const p of [ed, fay]) {
          const msg = inMain(p.page, seq);
          await until(p.page, `${mainSel(seq)} [data-testid="mention"][data-user="${FAY}"]`);
          assert.deepEqual(
            await msg.getByTestId('mention').evaluateAll((els) => els.map((e) => [(e as HTMLElement).dataset.user, e.textContent])),
            [
              [FAY, `@${FAY}`],
              [`nobody-${tag}`, `@nobody-${tag}`],
            ],
          );
          assert.ok(((await msg.textContent()) ?? '').includes(body), 'the body verbatim');
          assert.equal(await p.page.locator(`${MAIN} img`).count(), 0);
          assert.equal(await p.page.evaluate(() => (window as unknown as { __xss?: number }).__xss ?? null), null);
        }
      });

      it('shows changes made elsewhere live: an edit, a reaction, a reply and a delete from other clients on another instance', async () => {
        const target = await sendFrom(ed.page, `live target ${tag}`);
        const root = await sendFrom(ed.page, `live root ${tag}`);
        // Another connection of the page's own user edits: over ws on another instance.
        await edRaw.ok('message.edit', { roomId: ROOM_C, seq: target, body: `edited elsewhere ${tag}` });
        await until(ed.page, mainSel(target, '[data-version="2"]'), { text: `edited elsewhere ${tag}` });
        await fayRaw.ok('reaction.add', { roomId: ROOM_C, seq: target, key: 'laugh' });
        await until(ed.page, reactionSel(target, 'laugh', 1, false));
        await fayRaw.ok('message.send', { roomId: ROOM_C, body: `raw reply ${tag}`, parentSeq: root });
        await until(ed.page, `${mainSel(root)} [data-testid="reply-count"]`, { text: '1' });
        await until(ed.page, `${MAIN}[data-parent-seq="${root}"]`, { text: `raw reply ${tag}` });
        await edRaw.ok('message.delete', { roomId: ROOM_C, seq: target });
        await until(ed.page, mainSel(target, '[data-deleted="true"]'));
        assertShowsStored(await mainState(ed.page), await storedMessages(edRaw, ROOM_C), 'live');
      });

      it('after a reconnect shows every change made while it was away, as a fresh read does (more than a page of changes)', async () => {
        const keep = await sendFrom(ed.page, `keep me ${tag}`);
        const gone = await sendFrom(ed.page, `delete me ${tag}`);
        const root = await sendFrom(ed.page, `away root ${tag}`);
        const banner = ed.page.getByTestId('reconnect-banner');
        const port = C.port;
        C.proc.kill('SIGKILL');
        await C.exited;
        await banner.waitFor({ state: 'visible' });

        // New messages first, so the edits of older ones come only on the second page of changes.
        for (let i = 1; i <= AWAY_MESSAGES; i++) await fayRaw.ok('message.send', { roomId: ROOM_C, body: `away ${tag} ${i}` });
        await edRaw.ok('message.edit', { roomId: ROOM_C, seq: keep, body: `kept and edited ${tag}` });
        await edRaw.ok('message.delete', { roomId: ROOM_C, seq: gone });
        await fayRaw.ok('reaction.add', { roomId: ROOM_C, seq: keep, key: 'heart' });
        await edRaw.ok('reaction.add', { roomId: ROOM_C, seq: keep, key: '+1' });
        await fayRaw.ok('message.send', { roomId: ROOM_C, body: `away reply ${tag}`, parentSeq: root });
        const changes = await edRaw.ok('message.changes', { roomId: ROOM_C, afterModSeq: 0 });
        assert.equal(changes.hasMore, true, 'more than a page of changes');

        C = await restartOn(port, `C-${tag}`);
        await waitForState(ed.page, 'OPEN');
        await banner.waitFor({ state: 'hidden' });
        await until(ed.page, mainSel(keep, '[data-version="2"]'), { text: `kept and edited ${tag}` });
        await until(ed.page, mainSel(gone, '[data-deleted="true"]'));
        await until(ed.page, reactionSel(keep, '+1', 1, true));
        await until(ed.page, `${mainSel(root)} [data-testid="reply-count"]`, { text: '1' });
        await waitForBodies(ed.page, [`away ${tag} ${AWAY_MESSAGES}`, `away reply ${tag}`]);

        const stored = await storedMessages(edRaw, ROOM_C);
        const state = await mainState(ed.page);
        assert.deepEqual(
          state.map((m) => m.seq),
          stored.map((m) => m.seq),
          'every message of the room once, in seq order',
        );
        assertShowsStored(state, stored, 'after the reconnect');
        await screenshot(ed.page, `caught-up-${tag}`);
      });
    });
  }
});

describe('the chat page in production', () => {
  it('has no name sign-in: POST /dev/token is 404, the page is still served', async () => {
    const db = await createTestDatabase();
    const inst = await startInstance('P', { ...clusterEnv(db.url, redisPrefix()), NODE_ENV: 'production' });
    try {
      const res = await fetch(`${inst.url}/dev/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'mallory' }),
      });
      assert.equal(res.status, 404);
      const page = await fetch(`${inst.url}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /data-testid="token"/);
      assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self' 'sha256-/);
      for (const path of ['/app.js', '/vendor/socket.io-client/socket.io.esm.min.js']) {
        const res = await fetch(`${inst.url}${path}`);
        assert.equal(res.status, 200, path);
        assert.match(res.headers.get('content-type') ?? '', /javascript/, path);
      }
      assert.equal((await fetch(`${inst.url}/no-such-file.js`)).status, 404);
    } finally {
      await inst.stop();
      await db.drop();
    }
  });
});
