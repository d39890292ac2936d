/// <reference lib="dom" />
// The chat page served at `/`, driven in Debian's Chromium by playwright-core through the
// data-testid hooks of docs/page.md: two instances on one database and Redis prefix, a page on
// each (one per transport), XSS bodies, reload, and an instance dying under a page. Screenshots
// go to test-artifacts/browser-page/ (git-ignored). Message changes: browser-page-changes.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext } from 'playwright-core';
import {
  type ChatPage,
  DEV_KEY,
  joinRoom,
  launchChromium,
  MAIN,
  NO_CHROMIUM,
  openChatPage,
  pageInstanceEnv,
  restartOn,
  screenshot,
  type Shown,
  shown,
  signIn,
  waitForBodies,
  waitForPresence,
  waitForState,
  WAIT_MS,
} from './support/chat-page.js';
import { connect, type TestClient } from './support/clients.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { clusterEnv, redisPrefix, startInstance, type Instance } from './support/instance.js';
import { tokenFor } from './support/tokens.js';

describe('the chat page (Chromium)', { skip: NO_CHROMIUM }, () => {
  let db: TestDatabase;
  let prefix: string;
  let A: Instance;
  let B: Instance;
  let browser: Browser;
  let context: BrowserContext;
  const clients: TestClient[] = [];

  const instanceEnv = () => pageInstanceEnv(db.url, prefix);
  const openPage = (inst: Instance, ctx: BrowserContext = context) => openChatPage(ctx, inst);

  before(async () => {
    db = await createTestDatabase();
    prefix = redisPrefix();
    [A, B] = await Promise.all([startInstance('A', instanceEnv()), startInstance('B', instanceEnv())]);
    ({ browser, context } = await launchChromium());
  });

  after(async () => {
    for (const c of clients) c.close();
    await browser?.close();
    await Promise.all([A?.stop(), B?.stop()]);
    await db?.drop();
  });

  /** Seqs strictly ascending: seq order and no message twice. */
  function assertSeqOrder(messages: Shown[], label: string): void {
    const seqs = messages.map((m) => m.seq);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `${label}: seqs not strictly ascending: ${seqs.join(',')}`);
  }

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

    B = await restartOn('B', port, instanceEnv());
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
