/// <reference lib="dom" />
// Message changes on the chat page (docs/page.md "Message changes"), once per transport: edits,
// deletes, reactions, threads and mentions between two pages on two instances, changes made by
// other clients shown live, and everything changed while the page's instance was down shown
// after the reconnect as a fresh read has it. Only the data-testid hooks are used.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
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
  shown,
  signIn,
  THREAD,
  type Transport,
  until,
  waitForBodies,
  waitForPresence,
  waitForState,
} from './support/chat-page.js';
import { connect, type TestClient } from './support/clients.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { redisPrefix, startInstance, type Instance } from './support/instance.js';
import { tokenFor } from './support/tokens.js';

/** More than one page of message.changes (100) happens while the page is away. */
const AWAY_MESSAGES = 105;

describe('message changes on the chat page (Chromium)', { skip: NO_CHROMIUM }, () => {
  let db: TestDatabase;
  let prefix: string;
  /** The other page and the other clients run on A; each transport's page under test on its own instance. */
  let A: Instance;
  let browser: Browser;
  let context: BrowserContext;
  const clients: TestClient[] = [];
  // Retention every 300 ms, for the test of a reconnect past a room's floor.
  const instanceEnv = () => ({ ...pageInstanceEnv(db.url, prefix), RETENTION_INTERVAL_MS: '300' });

  before(async () => {
    db = await createTestDatabase();
    prefix = redisPrefix();
    A = await startInstance('A', instanceEnv());
    ({ browser, context } = await launchChromium());
  });

  after(async () => {
    for (const c of clients) c.close();
    await browser?.close();
    await A?.stop();
    await db?.drop();
  });

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
        ed = await openChatPage(context, C);
        fay = await openChatPage(context, A);
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
        const bodies = Array.from({ length: AWAY_MESSAGES }, (_, i) => `away ${tag} ${i + 1}`);
        for (let i = 0; i < bodies.length; i += 35)
          await Promise.all(bodies.slice(i, i + 35).map((body) => fayRaw.ok('message.send', { roomId: ROOM_C, body })));
        await edRaw.ok('message.edit', { roomId: ROOM_C, seq: keep, body: `kept and edited ${tag}` });
        await edRaw.ok('message.delete', { roomId: ROOM_C, seq: gone });
        await fayRaw.ok('reaction.add', { roomId: ROOM_C, seq: keep, key: 'heart' });
        await edRaw.ok('reaction.add', { roomId: ROOM_C, seq: keep, key: '+1' });
        await fayRaw.ok('message.send', { roomId: ROOM_C, body: `away reply ${tag}`, parentSeq: root });
        const changes = await edRaw.ok('message.changes', { roomId: ROOM_C, afterModSeq: 0 });
        assert.equal(changes.hasMore, true, 'more than a page of changes');

        C = await restartOn(`C-${tag}`, port, instanceEnv());
        await waitForState(ed.page, 'OPEN');
        await banner.waitFor({ state: 'hidden' });
        await until(ed.page, mainSel(keep, '[data-version="2"]'), { text: `kept and edited ${tag}` });
        await until(ed.page, mainSel(gone, '[data-deleted="true"]'));
        await until(ed.page, reactionSel(keep, '+1', 1, true));
        await until(ed.page, `${mainSel(root)} [data-testid="reply-count"]`, { text: '1' });
        await waitForBodies(ed.page, [...bodies, `away reply ${tag}`]);

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

      it("after a reconnect past the room's retention floor shows the room afresh: removed messages go, later ones come", async () => {
        const room = `retained-${tag}`;
        await joinRoom(ed.page, room, ED);
        for (let i = 1; i <= 3; i++) await fayRaw.ok('message.send', { roomId: room, body: `kept a while ${tag} ${i}` });
        await waitForBodies(
          ed.page,
          [1, 2, 3].map((i) => `kept a while ${tag} ${i}`),
        );
        const banner = ed.page.getByTestId('reconnect-banner');
        const port = C.port;
        C.proc.kill('SIGKILL');
        await C.exited;
        await banner.waitFor({ state: 'visible' });

        for (let i = 4; i <= 6; i++) await fayRaw.ok('message.send', { roomId: room, body: `kept a while ${tag} ${i}` });
        // 1-5 expire while the page is away: the floor moves to 6, past all it shows (1-3).
        await db.query(`UPDATE messages SET created_at = now() - interval '3 days' WHERE room_id = $1 AND seq <= 5`, [room]);
        await db.query('UPDATE rooms SET retention_days = 2 WHERE id = $1', [room]);
        const end = Date.now() + 20_000;
        while ((await db.query<{ floor_seq: string }>('SELECT floor_seq FROM rooms WHERE id = $1', [room]))[0].floor_seq !== '6') {
          assert.ok(Date.now() < end, 'the floor reaches 6 within 20 s');
          await new Promise((r) => setTimeout(r, 100));
        }

        C = await restartOn(`C-${tag}`, port, instanceEnv());
        await waitForState(ed.page, 'OPEN');
        await banner.waitFor({ state: 'hidden' });
        await waitForBodies(ed.page, [`kept a while ${tag} 6`]);
        const deadline = Date.now() + 10_000;
        let shownSeqs: number[] = [];
        while (Date.now() < deadline) {
          shownSeqs = (await mainState(ed.page)).map((m) => m.seq);
          if (shownSeqs.join() === '6') break;
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.deepEqual(shownSeqs, [6], 'only what is stored: 1-3 were removed, 4-5 never shown');
      });
    });
  }
});
