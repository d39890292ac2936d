// The chat page: plain ES modules served by the service, on top of the client library
// (/client/index.js). Message bodies, names and room ids are only ever set as textContent.
import { connect } from '/client/index.js';
import { bannedItem, memberControls, muteKey, redrawTimeLeft } from './member-controls.js';
import { parseMentions } from './mentions.js';
import { MessageItem } from './message-view.js';
import { duration, secondsUntil } from './time-left.js';

const HISTORY_PAGE = 50;
/** A thread's replies are read in pages of this many, up to THREAD_PAGES pages (the newest ones). */
const THREAD_PAGE = 100;
const THREAD_PAGES = 10;
/** Typing pings are repeated at most this often while typing; the indicator drops a user after TYPING_SHOWN_MS without one. */
const TYPING_PING_MS = 3000;
const TYPING_IDLE_MS = 4000;
const TYPING_SHOWN_MS = 6000;
const MODERATOR_ROLES = new Set(['owner', 'moderator']);

const $ = (id) => document.getElementById(id);
const el = {
  signIn: $('sign-in'),
  name: $('name'),
  token: $('token'),
  transport: $('transport'),
  connect: $('connect'),
  state: $('state'),
  me: $('me'),
  banner: $('reconnect-banner'),
  error: $('error'),
  joinForm: $('join-form'),
  room: $('room'),
  rooms: $('rooms'),
  presence: $('presence'),
  modTools: $('mod-tools'),
  modDuration: $('mod-duration'),
  modStatus: $('mod-status'),
  bansSection: $('bans-section'),
  bans: $('bans'),
  roomTitle: $('room-title'),
  messages: $('messages'),
  typing: $('typing'),
  notice: $('notice'),
  composerForm: $('composer-form'),
  composer: $('composer'),
  thread: $('thread'),
  threadTitle: $('thread-title'),
  threadClose: $('thread-close'),
  threadMessages: $('thread-messages'),
  threadForm: $('thread-form'),
  threadComposer: $('thread-composer'),
  threadSend: $('thread-send'),
};

/** @type {import('/client/index.js').ChatClient | null} */
let client = null;
let unsubscribe = [];
/**
 * The room shown: the latest state of each message known (per seq, the one with the highest
 * modSeq), its elements in the main list by seq (each rendered once), the oldest seq loaded,
 * whether older ones exist.
 */
let shown = null;
/** The open thread of the shown room: its root's seq and the elements of the panel by seq. */
let thread = null;
/** roomId → { lastSeq, lastReadSeq, unread } for the room list. */
const rooms = new Map();
/** userId → timer: who is typing in the shown room. */
const typists = new Map();
let typingSentAt = 0;
let typingIdle = null;
/**
 * The notice under the messages (a send waiting out a rate limit or slow mode, a mute, a ban, a
 * kick): its text from the time left, and when that time is up (ms; null: it has no end).
 */
let notice = null;
let noticeTimer = null;
/** Redraws the time left of the shown room's mutes and bans every second while one of them has an end. */
let sanctionsTimer = null;
/** The bans the banned users' list shows, as JSON: it is redrawn only when they change. */
let bansDrawn = '[]';

function showError(err) {
  el.error.textContent = err ? `${err.code ? `${err.code}: ` : ''}${err.message ?? String(err)}` : '';
  el.error.hidden = !err;
}

/** `text(left)` is drawn with the time left until `endsAt` (ms), every second, and goes when it is up. */
function showNotice(text, endsAt = null) {
  clearInterval(noticeTimer);
  notice = { text, endsAt };
  renderNotice();
  if (endsAt !== null) noticeTimer = setInterval(renderNotice, 1000);
}

function renderNotice() {
  const left = notice.endsAt === null ? null : secondsUntil(notice.endsAt);
  if (left !== null && left <= 0) return clearNotice();
  el.notice.textContent = notice.text(left === null ? null : duration(left));
  el.notice.hidden = false;
}

function clearNotice() {
  clearInterval(noticeTimer);
  notice = null;
  el.notice.hidden = true;
  el.notice.textContent = '';
}

function showWaiting(roomId, retryAfterMs) {
  showNotice((left) => `Sending too fast in ${roomId}: your message goes out in ${left}.`, Date.now() + retryAfterMs);
}

/** A refusal that says why the user may not act in the room (muted, banned) is the notice, with the time left; others are errors. */
function showRefusal(err, roomId) {
  const reason = err?.code === 'FORBIDDEN' ? err.details?.reason : undefined;
  if (reason !== 'muted' && reason !== 'banned') return showError(err);
  showError(null);
  const what = reason === 'muted' ? `You are muted in ${roomId}` : `You are banned from ${roomId}`;
  const until = typeof err.details.until === 'string' ? Date.parse(err.details.until) : null;
  showNotice((left) => (left === null ? `${what} until a moderator lifts it.` : `${what} for ${left} more.`), until);
}

/** The state and the banner change together, so the page never shows OPEN under a reconnect banner. */
function renderConnection() {
  const state = client ? client.state : 'CLOSED';
  el.state.textContent = state;
  el.banner.hidden = !(client && client.reconnecting && state !== 'OPEN');
  el.me.textContent = client?.userId ? `as ${client.userId}` : '';
  el.connect.textContent = client && state !== 'CLOSED' ? 'Disconnect' : 'Connect';
}

async function tokenFor(name) {
  const res = await fetch('/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  const answer = await res.json().catch(() => null);
  if (res.status === 404)
    throw new Error('signing in with a name is not available on this server (only in development with DEV_SIGN_IN=true): paste a token');
  if (!res.ok) throw answer?.error ?? new Error(`sign-in failed (${res.status})`);
  return answer.token;
}

async function start() {
  showError(null);
  const name = el.name.value.trim();
  const pasted = el.token.value.trim();
  if (!pasted && !name) return showError(new Error('enter a name or a token'));
  let token;
  try {
    token = pasted || (await tokenFor(name));
  } catch (err) {
    return showError(err);
  }
  client = connect({
    url: location.origin,
    token,
    transport: el.transport.value,
    // A name sign-in asks for a fresh short-lived token; a pasted token cannot be renewed here.
    getToken: pasted ? undefined : () => tokenFor(name),
    reconnect: { minDelayMs: 250, maxDelayMs: 3000 },
  });
  const c = client;
  unsubscribe = [
    c.on('state', renderConnection),
    c.on('reconnecting', renderConnection),
    c.on('session', () => {
      renderConnection();
      void refreshRooms();
      if (shown) void loadPresence(shown.roomId);
      // Other moderators may have acted while this page was away.
      void loadSanctions();
    }),
    c.on('message', onMessage),
    c.on('updated', onUpdated),
    c.on('presence', onPresence),
    c.on('typing', onTyping),
    c.on('receipt', (r) => {
      if (r.userId === c.userId) void refreshRooms();
    }),
    c.on('removed', (r) => {
      rooms.delete(r.roomId);
      renderRooms();
      if (shown?.roomId !== r.roomId) return;
      // Out of the room: nobody is shown as online in it for this user until a new join.
      el.presence.replaceChildren();
      if (r.reason === 'banned') showNotice(() => `A moderator banned you from ${r.roomId}.`);
      else if (r.reason === 'kicked') showNotice(() => `A moderator removed you from ${r.roomId}; you can join it again.`);
      else showError({ code: 'FORBIDDEN', message: `removed from ${r.roomId}` });
    }),
    c.on('recovered', ({ rooms: recovered }) => {
      // What the list shows may have holes (messages retention removed, a backlog skipped): read it afresh.
      const room = shown?.roomId;
      if (room && recovered.some((r) => r.roomId === room && r.discontinuity)) void showLatest(room).catch(showError);
    }),
    c.on('throttled', ({ roomId, retryAfterMs }) => {
      if (shown?.roomId === roomId) showWaiting(roomId, retryAfterMs);
    }),
    c.on('error', showError),
  ];
  renderConnection();
}

function stop() {
  for (const off of unsubscribe) off();
  unsubscribe = [];
  client?.close();
  client = null;
  shown = null;
  closeThread();
  clearNotice();
  rooms.clear();
  renderRooms();
  el.messages.replaceChildren();
  el.presence.replaceChildren();
  el.modTools.hidden = true;
  showModStatus(null);
  renderSanctions();
  el.roomTitle.textContent = 'No room';
  renderConnection();
}

async function refreshRooms() {
  if (!client) return;
  try {
    for (const r of await client.rooms()) rooms.set(r.roomId, r);
    renderRooms();
  } catch (err) {
    showError(err);
  }
}

function renderRooms() {
  // The list is rebuilt on every message: keep the keyboard focus on the room it was on.
  const focused = el.rooms.contains(document.activeElement) ? document.activeElement.dataset.room : undefined;
  const items = [...rooms.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([roomId, r]) => {
      const li = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.dataset.room = roomId;
      if (shown?.roomId === roomId) button.setAttribute('aria-current', 'true');
      const label = document.createElement('span');
      label.textContent = roomId;
      const unread = document.createElement('span');
      unread.className = 'unread';
      const count = shown?.roomId === roomId ? 0 : r.unread;
      unread.textContent = count > 0 ? String(count) : '';
      if (count > 0) unread.setAttribute('aria-label', `${count} unread`);
      button.append(label, unread);
      button.addEventListener('click', () => void join(roomId));
      li.append(button);
      return li;
    });
  el.rooms.replaceChildren(...items);
  if (focused !== undefined) el.rooms.querySelector(`button[data-room="${CSS.escape(focused)}"]`)?.focus();
}

async function join(roomId) {
  if (!client || !roomId) return;
  showError(null);
  try {
    const joined = await client.join(roomId);
    closeThread();
    clearNotice();
    shown = {
      roomId,
      moderator: MODERATOR_ROLES.has(joined.role),
      states: new Map(),
      items: new Map(),
      oldest: Infinity,
      hasMore: true,
      loadingOlder: false,
      /** A moderator's view: the room's mutes and bans as moderation.list last answered; null until it has. */
      sanctions: null,
      /** The moderation.list under way, and whether it is to be asked again when it is answered. */
      listing: null,
      listAgain: false,
    };
    rooms.set(roomId, { roomId, lastSeq: joined.lastSeq, lastReadSeq: joined.lastReadSeq, unread: joined.unread });
    el.roomTitle.textContent = roomId;
    el.modTools.hidden = !shown.moderator;
    showModStatus(null);
    renderSanctions();
    clearTypists();
    renderRooms();
    await showLatest(roomId);
    // Before the presence entries, so that their controls are drawn knowing who is muted.
    await loadSanctions();
    await loadPresence(roomId);
  } catch (err) {
    showRefusal(err, roomId);
  }
}

/** Shows the room's newest messages afresh, in place of whatever the list held. */
async function showLatest(roomId) {
  shown.states.clear();
  shown.items.clear();
  shown.oldest = Infinity;
  shown.hasMore = true;
  el.messages.replaceChildren();
  const page = await client.history(roomId, { limit: HISTORY_PAGE });
  if (shown?.roomId !== roomId) return;
  shown.hasMore = page.hasMore;
  for (const m of page.messages) addMessage(m);
  el.messages.scrollTop = el.messages.scrollHeight;
  markRead();
  await fillView();
}

async function loadPresence(roomId) {
  try {
    const users = await client.presence(roomId);
    if (shown?.roomId !== roomId) return;
    el.presence.replaceChildren(...users.map(presenceItem));
  } catch (err) {
    showError(err);
  }
}

function presenceItem(userId) {
  const li = document.createElement('li');
  li.dataset.user = userId;
  const name = document.createElement('span');
  name.textContent = userId === client?.userId ? `${userId} (you)` : userId;
  li.append(name);
  if (moderating() && userId !== client?.userId) li.append(memberControls(userId, moderate, muteOf(userId)));
  return li;
}

/** The user's mute in the shown room (`{ until }`), null when not muted, undefined when the page has not learnt the room's mutes. */
function muteOf(userId) {
  return shown?.sanctions ? (shown.sanctions.mutes.find((s) => s.userId === userId) ?? null) : undefined;
}

/**
 * A moderator's page asks the shown room's mutes and bans (moderation.list): on joining, after
 * each of its own actions and when a member's entry and its controls appear. An ask made while
 * one is under way is made again once that one is answered, so a burst of entries costs two
 * requests and what is drawn is never older than the last ask. Resolves once drawn.
 */
function loadSanctions() {
  const target = shown;
  if (!client || !target?.moderator) return Promise.resolve();
  if (target.listing) {
    target.listAgain = true;
    return target.listing;
  }
  target.listing = (async () => {
    try {
      do {
        target.listAgain = false;
        const { mutes, bans } = await client.sanctions(target.roomId);
        if (shown !== target) return;
        target.sanctions = { mutes, bans };
        renderSanctions();
      } while (target.listAgain);
    } catch (err) {
      if (shown === target) showError(err);
    } finally {
      target.listing = null;
    }
  })();
  return target.listing;
}

/**
 * Draws what follows the shown room's mutes and bans: the controls of the presence entries whose
 * mute changed, and the banned users' list (a banned user is never in the presence list).
 */
function renderSanctions() {
  clearInterval(sanctionsTimer);
  sanctionsTimer = null;
  const moderator = moderating();
  const known = moderator ? shown.sanctions : null;
  // What has not changed is left alone: it may be under the moderator's pointer.
  if (moderator)
    for (const li of el.presence.children) {
      const controls = li.querySelector('.member-controls');
      const mute = muteOf(li.dataset.user);
      if (controls && controls.dataset.mute !== muteKey(mute)) controls.replaceWith(memberControls(li.dataset.user, moderate, mute));
    }
  const bans = known?.bans ?? [];
  const drawing = JSON.stringify(bans);
  if (drawing !== bansDrawn) el.bans.replaceChildren(...bans.map((ban) => bannedItem(ban, moderate)));
  bansDrawn = drawing;
  el.bansSection.hidden = bans.length === 0;
  if (known && [...known.mutes, ...bans].some((s) => s.until !== null)) sanctionsTimer = setInterval(tickSanctions, 1000);
}

/** Every second while a mute or ban has an end: its time left is redrawn, and it goes once it ran out, as on the service. */
function tickSanctions() {
  const known = shown?.sanctions;
  if (!known) return;
  const inForce = (s) => s.until === null || Date.parse(s.until) > Date.now();
  if (known.mutes.every(inForce) && known.bans.every(inForce)) {
    redrawTimeLeft(el.presence);
    redrawTimeLeft(el.bans);
    return;
  }
  shown.sanctions = { mutes: known.mutes.filter(inForce), bans: known.bans.filter(inForce) };
  renderSanctions();
}

/** A moderator's action from a member's entry; mutes and bans last as long as the duration picked. */
async function moderate(action, userId) {
  if (!client || !shown) return;
  const roomId = shown.roomId;
  const picked = el.modDuration.selectedOptions[0];
  const durationMs = picked.value === '' ? undefined : Number(picked.value);
  const lasting = durationMs === undefined ? `until ${action === 'mute' ? 'unmuted' : 'unbanned'}` : `for ${picked.textContent}`;
  showError(null);
  try {
    if (action === 'mute') await client.mute(roomId, userId, { durationMs });
    else if (action === 'unmute') await client.unmute(roomId, userId);
    else if (action === 'kick') await client.kick(roomId, userId);
    else if (action === 'ban') await client.ban(roomId, userId, { durationMs });
    else await client.unban(roomId, userId);
  } catch (err) {
    return showError(err);
  } finally {
    // What the action changed, or what another moderator had changed when it was refused.
    void loadSanctions();
  }
  const done = {
    mute: `${userId} is muted in ${roomId} ${lasting}.`,
    unmute: `${userId} can write in ${roomId} again.`,
    kick: `${userId} was removed from ${roomId}; they can join again.`,
    ban: `${userId} is banned from ${roomId} ${lasting}.`,
    unban: `${userId} may join ${roomId} again.`,
  }[action];
  showModStatus(done);
}

function showModStatus(text) {
  el.modStatus.textContent = text ?? '';
  el.modStatus.hidden = !text;
}

function onPresence({ roomId, userId, online }) {
  if (shown?.roomId !== roomId) return;
  const existing = [...el.presence.children].find((li) => li.dataset.user === userId);
  if (online && !existing) {
    const after = [...el.presence.children].find((li) => li.dataset.user > userId);
    el.presence.insertBefore(presenceItem(userId), after ?? null);
    // Its controls are drawn from the list asked earlier: ask again, another moderator may have acted since.
    if (userId !== client?.userId) void loadSanctions();
  } else if (!online && existing && userId !== client?.userId) existing.remove();
}

function onMessage(m) {
  const r = rooms.get(m.roomId) ?? { roomId: m.roomId, lastSeq: 0, lastReadSeq: 0, unread: 0 };
  if (m.seq > r.lastSeq) {
    if (m.senderId !== client?.userId && shown?.roomId !== m.roomId) r.unread += 1;
    r.lastSeq = m.seq;
  }
  rooms.set(m.roomId, r);
  renderRooms();
  if (shown?.roomId !== m.roomId) return;
  const atBottom = el.messages.scrollHeight - el.messages.scrollTop - el.messages.clientHeight < 40;
  addMessage(m);
  if (thread && m.parentSeq === thread.rootSeq) addToThread(latest(m));
  stopTyping(m.senderId);
  if (atBottom || m.senderId === client?.userId) el.messages.scrollTop = el.messages.scrollHeight;
  markRead();
}

/** The state to show for a message: the one with the highest modSeq seen, whichever way it came. */
function latest(m) {
  const known = shown.states.get(m.seq);
  if (known && !(m.modSeq > known.modSeq)) return known;
  shown.states.set(m.seq, m);
  return m;
}

/** Edits, deletes, reactions and reply counts, live or caught up after a reconnect: newer states redraw their elements. */
function onUpdated(m) {
  if (shown?.roomId !== m.roomId) return;
  const before = shown.states.get(m.seq);
  const now = latest(m);
  if (now === before) return;
  shown.items.get(m.seq)?.update(now);
  thread?.items.get(m.seq)?.update(now);
  if (thread?.rootSeq === m.seq) renderThreadComposer();
}

/** What a message element's controls do; each resolves once the service answered (the new state arrives as 'updated'). */
const messageActions = {
  edit: (m, body, mentions) => client.edit(m.roomId, m.seq, body, { mentions, expectedVersion: m.version }),
  remove: (m) => client.delete(m.roomId, m.seq),
  react: (m, key, on) => (on ? client.react(m.roomId, m.seq, key) : client.unreact(m.roomId, m.seq, key)),
  openThread: (rootSeq) => void openThread(rootSeq),
  error: (err) => showRefusal(err, shown?.roomId),
};

const moderating = () => shown?.moderator === true;
const messageItem = (m, view) => new MessageItem(m, { me: client?.userId, view, actions: messageActions, moderating });

/** Inserts an element at its seq position in a list; `items` maps seq → MessageItem. */
function insertBySeq(list, items, item) {
  let next = null;
  for (const [seq, other] of items) if (seq > item.seq && (!next || seq < next.seq)) next = other;
  list.insertBefore(item.li, next?.li ?? null);
  items.set(item.seq, item);
}

/** Inserts a message in the main list at its seq position; a seq already shown is skipped, whichever way it came. */
function addMessage(m) {
  const now = latest(m);
  if (shown.items.has(m.seq)) return;
  insertBySeq(el.messages, shown.items, messageItem(now, 'main'));
  shown.oldest = Math.min(shown.oldest, m.seq);
}

/** Opens the thread of a top-level message in the panel: the root, then its replies in seq order. */
async function openThread(rootSeq) {
  if (!client || !shown) return;
  if (thread?.rootSeq === rootSeq) return el.threadComposer.focus();
  closeThread();
  const target = { roomId: shown.roomId, rootSeq, items: new Map() };
  thread = target;
  el.thread.hidden = false;
  el.threadTitle.textContent = `Thread of #${rootSeq}`;
  el.threadMessages.replaceChildren();
  renderThreadComposer();
  el.threadComposer.focus();
  try {
    // A root shown in the main list is known; one opened from an older reply is read on its own.
    const root = shown.states.get(rootSeq) ?? (await client.history(target.roomId, { afterSeq: rootSeq - 1, limit: 1 })).messages[0];
    if (thread !== target || !root) return;
    addToThread(latest(root));
    renderThreadComposer();
    let beforeSeq;
    for (let i = 0; i < THREAD_PAGES; i++) {
      const page = await client.history(target.roomId, { parentSeq: rootSeq, limit: THREAD_PAGE, ...(beforeSeq ? { beforeSeq } : {}) });
      if (thread !== target) return;
      for (const m of page.messages) addToThread(latest(m));
      if (!page.hasMore || page.messages.length === 0) break;
      beforeSeq = page.messages[0].seq;
    }
  } catch (err) {
    showError(err);
  }
}

function addToThread(m) {
  if (thread.items.has(m.seq)) return;
  insertBySeq(el.threadMessages, thread.items, messageItem(m, m.seq === thread.rootSeq ? 'root' : 'reply'));
}

function closeThread() {
  const was = thread;
  thread = null;
  el.thread.hidden = true;
  el.threadMessages.replaceChildren();
  el.threadComposer.value = '';
  // Back to where the thread was opened from, for keyboard users.
  if (was && shown) shown.items.get(was.rootSeq)?.li.querySelector('[data-testid="reply"]')?.focus();
}

/** A deleted root takes no replies. */
function renderThreadComposer() {
  const closed = thread ? shown?.states.get(thread.rootSeq)?.deletedAt != null : true;
  el.threadComposer.disabled = closed;
  el.threadSend.disabled = closed;
  el.threadComposer.placeholder = closed ? 'The thread is closed: its message was deleted' : 'Reply (Enter sends)';
}

/** Older messages when scrolled to the top, keeping the view where it was. */
async function loadOlder() {
  if (!client || !shown || !shown.hasMore || shown.loadingOlder || !Number.isFinite(shown.oldest)) return;
  const target = shown;
  target.loadingOlder = true;
  try {
    const page = await client.history(target.roomId, { beforeSeq: target.oldest, limit: HISTORY_PAGE });
    if (shown !== target) return;
    const before = el.messages.scrollHeight;
    for (const m of page.messages) addMessage(m);
    target.hasMore = page.hasMore;
    el.messages.scrollTop += el.messages.scrollHeight - before;
  } catch (err) {
    showError(err);
  } finally {
    target.loadingOlder = false;
  }
}

/** Without a scroll bar there is no scrolling to the top: load older pages until one shows or none are left. */
async function fillView() {
  for (let i = 0; i < 10 && shown?.hasMore && el.messages.scrollHeight <= el.messages.clientHeight; i++) await loadOlder();
}

/** The newest message shown counts as read while the page is visible. */
function markRead() {
  if (!client || !shown || document.visibilityState !== 'visible' || client.state !== 'OPEN') return;
  const newest = Math.max(0, ...shown.items.keys());
  const r = rooms.get(shown.roomId);
  if (!newest || (r && r.lastReadSeq >= newest)) return;
  if (r) {
    r.lastReadSeq = newest;
    r.unread = Math.max(0, r.lastSeq - newest);
  }
  client.markRead(shown.roomId, newest).catch(() => {
    // Read state is best effort; the next shown message marks it again.
    if (r) r.lastReadSeq = 0;
  });
}

function onTyping({ roomId, userId, typing }) {
  if (shown?.roomId !== roomId || userId === client?.userId) return;
  if (typing) {
    clearTimeout(typists.get(userId));
    typists.set(
      userId,
      setTimeout(() => stopTyping(userId), TYPING_SHOWN_MS),
    );
  } else stopTyping(userId);
  renderTyping();
}

function stopTyping(userId) {
  if (!typists.has(userId)) return;
  clearTimeout(typists.get(userId));
  typists.delete(userId);
  renderTyping();
}

function clearTypists() {
  for (const t of typists.values()) clearTimeout(t);
  typists.clear();
  renderTyping();
}

function renderTyping() {
  const names = [...typists.keys()];
  el.typing.textContent =
    names.length === 0
      ? ''
      : names.length === 1
        ? `${names[0]} is typing…`
        : `${names.slice(0, -1).join(', ')} and ${names.at(-1)} are typing…`;
}

function composing() {
  if (!client || !shown || client.state !== 'OPEN') return;
  const roomId = shown.roomId;
  if (Date.now() - typingSentAt > TYPING_PING_MS) {
    typingSentAt = Date.now();
    client.typing(roomId, true).catch(() => {});
  }
  clearTimeout(typingIdle);
  typingIdle = setTimeout(() => stoppedComposing(roomId), TYPING_IDLE_MS);
}

function stoppedComposing(roomId) {
  clearTimeout(typingIdle);
  if (!typingSentAt) return;
  typingSentAt = 0;
  client?.typing(roomId, false).catch(() => {});
}

/** Sends a composer's text; `parentSeq` makes it a reply in that thread. */
async function send(composer, parentSeq) {
  const body = composer.value;
  if (body.trim() === '') return;
  if (!client || !shown) return showError(new Error(client ? 'join a room first' : 'connect first'));
  const roomId = shown.roomId;
  composer.value = '';
  stoppedComposing(roomId);
  const opts = { mentions: parseMentions(body), ...(parentSeq !== undefined ? { parentSeq } : {}) };
  try {
    // The library retries until the service has stored it, across reconnects, without duplicates.
    const m = await client.send(roomId, body, opts);
    // The waiting notice is over once the message is out.
    if (shown?.roomId === roomId) clearNotice();
    if (shown?.roomId === roomId) onMessage(m);
  } catch (err) {
    showRefusal(err, roomId);
    if (!composer.value) composer.value = body;
  }
}

const sendMessage = () => void send(el.composer);
const sendReply = () => {
  if (thread) void send(el.threadComposer, thread.rootSeq);
};

/** Enter sends, Shift+Enter starts a new line. */
function sendOnEnter(composer, submit) {
  composer.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  });
}

el.signIn.addEventListener('submit', (e) => {
  e.preventDefault();
  // A client that gave up (refused token, closed by the service) is replaced by a new attempt.
  const again = !client || client.state === 'CLOSED';
  if (client) stop();
  if (again) void start();
});
el.joinForm.addEventListener('submit', (e) => {
  e.preventDefault();
  void join(el.room.value.trim());
});
el.composerForm.addEventListener('submit', (e) => {
  e.preventDefault();
  sendMessage();
});
sendOnEnter(el.composer, sendMessage);
el.threadForm.addEventListener('submit', (e) => {
  e.preventDefault();
  sendReply();
});
sendOnEnter(el.threadComposer, sendReply);
el.threadClose.addEventListener('click', closeThread);
el.thread.addEventListener('keydown', (e) => {
  // Escape inside a message (editing, picking) is that message's; only a plain Escape closes the panel.
  if (e.key === 'Escape' && !e.defaultPrevented && !e.target.closest('[data-testid="message"]')) closeThread();
});
el.composer.addEventListener('input', composing);
el.messages.addEventListener('scroll', () => {
  if (el.messages.scrollTop < 20) void loadOlder();
});
document.addEventListener('visibilitychange', markRead);
renderConnection();
