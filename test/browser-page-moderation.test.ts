/// <reference lib="dom" />
// Moderation on the chat page (docs/page.md, "Moderators and notices"): a moderator's page on one
// instance (socket.io) and a member's page on the other (ws). The moderator deletes the member's
// message and mutes, unmutes, kicks and bans them from their presence entry, and unbans them from
// the banned users' list; the member's page says what happened to it, with the time left, and slow
// mode's wait is counted down. The moderator's page offers Unmute and Unban only for users the
// service lists as muted or banned (moderation.list), including after a reload.
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
  screenshot,
  signIn,
  until,
  waitForBodies,
  waitForPresence,
} from './support/chat-page.js';
import { connect, type TestClient } from './support/clients.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { apiCall } from './support/http-api.js';
import { redisPrefix, startInstance, type Instance } from './support/instance.js';
import { tokenFor } from './support/tokens.js';

const API_KEY = 'page-moderation-api-key-0123456789';
const ROOM = 'page-moderation';
const MOD = 'pm-mod';
const ANN = 'pm-ann';

describe('moderation on the chat page (Chromium)', { skip: NO_CHROMIUM }, () => {
  let db: TestDatabase;
  let A: Instance;
  let B: Instance;
  let browser: Browser;
  let context: BrowserContext;
  let mod: ChatPage;
  let ann: ChatPage;
  let reader: TestClient;

  before(async () => {
    db = await createTestDatabase();
    const env = { ...pageInstanceEnv(db.url, redisPrefix()), API_KEYS: API_KEY };
    [A, B] = await Promise.all([startInstance('A', env), startInstance('B', env)]);
    ({ browser, context } = await launchChromium());
    assert.equal((await apiCall(A, 'PUT', `/v1/rooms/${ROOM}`, { key: API_KEY, body: { visibility: 'public' } })).status, 201);
    assert.equal((await apiCall(A, 'PUT', `/v1/rooms/${ROOM}/members/${MOD}`, { key: API_KEY, body: { role: 'moderator' } })).status, 204);
    reader = await connect('ws', A.url, await tokenFor('pm-reader', DEV_KEY));
    await reader.ok('room.join', { roomId: ROOM });
  });

  after(async () => {
    reader?.close();
    await browser?.close();
    await Promise.all([A?.stop(), B?.stop()]);
    await db?.drop();
  });

  const entry = (user: string, control: string) => `[data-testid="presence"] > [data-user="${user}"] [data-testid="${control}"]`;
  const bannedEntry = (user: string) => `[data-testid="moderation-bans"] > [data-user="${user}"]`;
  const noticeText = (page: Page) => page.getByTestId('notice').textContent();

  async function storedBodies(): Promise<string[]> {
    const page = await reader.ok('message.history', { roomId: ROOM, limit: 100 });
    return page.messages.map((m: { body: string }) => m.body);
  }

  /** Types into the composer and presses Enter; the composer keeps the text when the send is refused. */
  async function typeAndSend(page: Page, body: string): Promise<void> {
    await page.getByTestId('composer').fill(body);
    await page.getByTestId('composer').press('Enter');
  }

  async function moderate(control: string, duration?: string): Promise<void> {
    if (duration !== undefined) await mod.page.getByTestId('moderation-duration').selectOption(duration);
    await mod.page.locator(entry(ANN, control)).click();
  }

  it("shows member controls only to a moderator, on others' entries; a moderator deletes a member's message", async () => {
    mod = await openChatPage(context, A);
    ann = await openChatPage(context, B);
    await signIn(mod, MOD, 'socket.io');
    await signIn(ann, ANN, 'ws');
    await joinRoom(mod.page, ROOM, MOD);
    await joinRoom(ann.page, ROOM, ANN);
    await waitForPresence(mod.page, ANN);
    await waitForPresence(ann.page, MOD);

    await until(mod.page, entry(ANN, 'member-mute'));
    for (const control of ['member-mute', 'member-kick', 'member-ban'])
      assert.equal(await mod.page.locator(entry(ANN, control)).count(), 1, control);
    assert.equal(await mod.page.locator(entry(ANN, 'member-unmute')).count(), 0, 'no Unmute for a member who is not muted');
    assert.equal(await mod.page.getByTestId('moderation-bans').isVisible(), false, 'nobody is banned');
    assert.equal(await mod.page.locator(entry(MOD, 'member-mute')).count(), 0, 'no controls on the own entry');
    assert.equal(await ann.page.locator('[data-testid^="member-"]').count(), 0, 'a member gets no controls');
    assert.ok(await mod.page.getByTestId('moderation-duration').isVisible());
    assert.equal(await ann.page.getByTestId('moderation-duration').isVisible(), false);

    await typeAndSend(ann.page, 'a message to take down');
    await waitForBodies(mod.page, ['a message to take down']);
    const own = mod.page.locator(MAIN, { hasText: 'a message to take down' });
    assert.equal(await own.getByTestId('message-edit').count(), 0, "a moderator does not edit others' messages");
    await own.getByTestId('message-delete').click();
    await own.getByTestId('confirm-delete').click();
    for (const page of [mod.page, ann.page]) await until(page, `${MAIN}[data-deleted="true"][data-sender="${ANN}"]`);
  });

  it('mutes for the duration picked: the member sees the time left and nothing is stored; unmuted, the kept text goes out', async () => {
    await moderate('member-mute', '600000');
    await until(mod.page, '[data-testid="moderation-status"]', { text: `${ANN} is muted in ${ROOM} for 10 min` });
    await until(mod.page, entry(ANN, 'member-unmute'));
    assert.equal(await mod.page.locator(entry(ANN, 'member-mute')).count(), 0, 'no Mute for a muted member');
    const muted = mod.page.locator(`[data-testid="presence"] > [data-user="${ANN}"]`);
    assert.match((await muted.textContent()) ?? '', /muted, (9|10) min left/);
    await typeAndSend(ann.page, 'said while muted');
    await until(ann.page, '[data-testid="notice"]', { text: `You are muted in ${ROOM} for` });
    assert.match((await noticeText(ann.page)) ?? '', /for (9|10) min more/);
    assert.equal(await ann.page.getByTestId('composer').inputValue(), 'said while muted', 'the refused text stays');
    assert.ok(!(await storedBodies()).includes('said while muted'));

    await moderate('member-unmute');
    await until(mod.page, '[data-testid="moderation-status"]', { text: `${ANN} can write in ${ROOM} again` });
    await until(mod.page, entry(ANN, 'member-mute'));
    assert.equal(await mod.page.locator(entry(ANN, 'member-unmute')).count(), 0, 'no Unmute once unmuted');
    await ann.page.getByTestId('composer').press('Enter');
    await waitForBodies(mod.page, ['said while muted']);
    assert.ok(await ann.page.getByTestId('notice').isHidden(), 'the notice goes once a message is out');
  });

  it("counts slow mode's wait down in the notice, then sends", async () => {
    assert.equal(
      (await apiCall(A, 'PUT', `/v1/rooms/${ROOM}`, { key: API_KEY, body: { visibility: 'public', slowModeMs: 4000 } })).status,
      200,
    );
    await typeAndSend(ann.page, 'slow one');
    await waitForBodies(ann.page, ['slow one']);
    await typeAndSend(ann.page, 'slow two');
    await until(ann.page, '[data-testid="notice"]', { text: `Sending too fast in ${ROOM}: your message goes out in` });
    assert.match((await noticeText(ann.page)) ?? '', /goes out in [1-4] s/);
    await waitForBodies(mod.page, ['slow two']);
    await until(ann.page, '[data-testid="notice"]:not([hidden])', { gone: true });
    assert.equal(
      (await apiCall(A, 'PUT', `/v1/rooms/${ROOM}`, { key: API_KEY, body: { visibility: 'public', slowModeMs: 0 } })).status,
      200,
    );
  });

  it('kicks: the member is told and may join again', async () => {
    await moderate('member-kick');
    await until(ann.page, '[data-testid="notice"]', { text: `A moderator removed you from ${ROOM}; you can join it again.` });
    await until(mod.page, `[data-testid="presence"] > [data-user="${ANN}"]`, { gone: true });
    await joinRoom(ann.page, ROOM, ANN);
    assert.ok(await ann.page.getByTestId('notice').isHidden());
    await waitForPresence(mod.page, ANN);
  });

  it("bans until lifted: the member is told, a rejoin says they are banned; unbanned from the banned users' list, they join again", async () => {
    await until(mod.page, entry(ANN, 'member-ban'));
    await moderate('member-ban', '');
    await until(mod.page, '[data-testid="moderation-status"]', { text: `${ANN} is banned from ${ROOM} until unbanned` });
    await until(ann.page, '[data-testid="notice"]', { text: `A moderator banned you from ${ROOM}.` });
    await ann.page.getByTestId('room').fill(ROOM);
    await ann.page.getByTestId('join').click();
    await until(ann.page, '[data-testid="notice"]', { text: `You are banned from ${ROOM} until a moderator lifts it.` });
    await screenshot(ann.page, 'moderation-banned');

    await until(mod.page, bannedEntry(ANN), { text: 'banned until lifted' });
    await mod.page.getByTestId('member-unban').click();
    await until(mod.page, '[data-testid="moderation-status"]', { text: `${ANN} may join ${ROOM} again` });
    await until(mod.page, bannedEntry(ANN), { gone: true });
    await joinRoom(ann.page, ROOM, ANN);
    await typeAndSend(ann.page, 'back after the ban');
    await waitForBodies(mod.page, ['back after the ban']);
    await screenshot(mod.page, 'moderation-moderator');
    for (const p of [mod, ann]) assert.deepEqual([p.dialogs, p.errors], [[], []]);
  });

  it("after a reload the moderator's page learns the mutes and bans from the service, its own and others'", async () => {
    await moderate('member-mute', '');
    await until(mod.page, entry(ANN, 'member-unmute'));
    // A ban the page did not make, of a user it never saw: over HTTP, for an hour.
    const bob = 'pm-bob';
    assert.equal(
      (await apiCall(B, 'POST', `/v1/rooms/${ROOM}/bans/${bob}`, { key: API_KEY, body: { durationMs: 3_600_000, reason: 'flooding' } }))
        .status,
      204,
    );

    await mod.page.reload();
    await signIn(mod, MOD, 'socket.io');
    await joinRoom(mod.page, ROOM, MOD);
    await waitForPresence(mod.page, ANN);
    await until(mod.page, entry(ANN, 'member-unmute'));
    assert.equal(await mod.page.locator(entry(ANN, 'member-mute')).count(), 0, 'no Mute for a member the service lists as muted');
    assert.match((await mod.page.locator(`[data-testid="presence"] > [data-user="${ANN}"]`).textContent()) ?? '', /muted until lifted/);
    await until(mod.page, bannedEntry(bob));
    assert.match((await mod.page.locator(bannedEntry(bob)).textContent()) ?? '', /banned, (1 h 0 min|59 min) left.*flooding/);
    assert.equal(await mod.page.locator(`[data-testid="presence"] > [data-user="${bob}"]`).count(), 0, 'a banned user is not online');
    assert.equal(await ann.page.getByTestId('moderation-bans').isVisible(), false, 'a member sees no bans');
    await screenshot(mod.page, 'moderation-listed');

    await mod.page.locator(bannedEntry(bob)).getByTestId('member-unban').click();
    await until(mod.page, bannedEntry(bob), { gone: true });
    assert.deepEqual((await apiCall(A, 'GET', `/v1/rooms/${ROOM}/bans`, { key: API_KEY })).body, { bans: [] });
    assert.equal(await mod.page.getByTestId('moderation-bans').isVisible(), false, 'no bans left to show');
    await moderate('member-unmute');
    await until(mod.page, entry(ANN, 'member-mute'));
    assert.deepEqual((await apiCall(A, 'GET', `/v1/rooms/${ROOM}/mutes`, { key: API_KEY })).body, { mutes: [] });
    for (const p of [mod, ann]) assert.deepEqual([p.dialogs, p.errors], [[], []]);
  });
});
