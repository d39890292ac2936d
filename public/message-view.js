// One message element of the page, drawn from the message's latest state. Bodies and names are
// only ever set as text (textContent, text nodes), never as HTML.
import { button, part } from './dom.js';
import { bodyNodes, parseMentions } from './mentions.js';

/** The reactions the picker offers; other keys (set by other clients) are shown by their key. */
const REACTIONS = [
  { key: '+1', emoji: '👍', name: 'thumbs up' },
  { key: 'heart', emoji: '❤️', name: 'heart' },
  { key: 'laugh', emoji: '😂', name: 'laugh' },
  { key: 'tada', emoji: '🎉', name: 'celebrate' },
  { key: 'eyes', emoji: '👀', name: 'eyes' },
];
const BY_KEY = new Map(REACTIONS.map((r) => [r.key, r]));

/**
 * A `message` element in one view: `main` (the room's list, where a reply is shown compactly
 * with a link to its thread), `root` (a thread panel's root) or `reply` (a reply in the thread
 * panel). Its own controls (editing, the reaction picker, the delete confirmation) are local
 * state; what they decide goes to `actions` ({ edit, remove, react, openThread, error }), whose
 * promises resolve once the service answered. `update` redraws from a newer state and keeps an
 * edit in progress and the keyboard focus where they were. `moderating()` tells whether the user
 * moderates the room: a moderator may delete anyone's message (but edit only their own).
 */
export class MessageItem {
  constructor(m, { me, view, actions, moderating }) {
    this.me = me;
    this.moderating = moderating;
    this.view = view;
    this.actions = actions;
    this.editing = false;
    this.picking = false;
    this.confirming = false;
    this.draft = null;
    this.li = document.createElement('li');
    this.li.dataset.testid = 'message';
    // Focus lands on the message itself when the control that had it disappears (after a delete).
    this.li.tabIndex = -1;
    this.meta = part('div', 'meta');
    this.threadLink = part('div', 'thread-link');
    this.content = part('div', 'content');
    this.reactions = part('div', 'reactions');
    this.controls = part('div', 'controls');
    this.li.append(this.meta, this.threadLink, this.content, this.reactions, this.controls);
    this.li.addEventListener('keydown', (e) => this.onKey(e));
    this.update(m);
  }

  get seq() {
    return this.m.seq;
  }

  update(m) {
    this.m = m;
    const focused =
      this.li.contains(document.activeElement) && document.activeElement !== this.draft ? focusKey(document.activeElement) : null;
    this.render();
    if (focused) this.refocus(focused);
  }

  render() {
    const { m, li } = this;
    const deleted = m.deletedAt != null;
    if (deleted) this.editing = this.picking = this.confirming = false;
    li.dataset.seq = String(m.seq);
    li.dataset.sender = m.senderId;
    li.dataset.version = String(m.version);
    setData(li, 'deleted', deleted ? 'true' : null);
    setData(li, 'parentSeq', m.parentSeq != null ? String(m.parentSeq) : null);
    li.classList.toggle('mine', m.senderId === this.me);
    li.classList.toggle('reply', m.parentSeq != null);
    li.classList.toggle('deleted', deleted);

    const edited = m.editedAt && !deleted ? ' · edited' : '';
    this.meta.textContent = `${m.senderId} · ${new Date(m.createdAt).toLocaleTimeString()}${edited}`;
    this.threadLink.replaceChildren(
      ...(this.view === 'main' && m.parentSeq != null
        ? [button(`replied in thread of #${m.parentSeq}`, () => this.actions.openThread(m.parentSeq), { className: 'link' })]
        : []),
    );
    this.renderContent(deleted);
    this.reactions.replaceChildren(...(deleted ? [] : m.reactions.map((r) => this.reactionButton(r))));
    this.controls.replaceChildren(...this.controlNodes(deleted));
  }

  renderContent(deleted) {
    if (deleted) {
      const note = part('em', 'tombstone');
      note.textContent = 'This message was deleted';
      this.content.replaceChildren(note);
    } else if (this.editing) {
      // The editor stays as it is under updates: redrawing it would drop the focus and the caret.
      if (!this.content.contains(this.draft)) this.content.replaceChildren(this.editor());
    } else {
      const body = part('span', 'body');
      body.append(...bodyNodes(this.m.body, this.m.mentions, this.me));
      this.content.replaceChildren(body);
    }
  }

  editor() {
    const draft = document.createElement('textarea');
    draft.dataset.testid = 'edit-input';
    draft.rows = 2;
    draft.value = this.m.body;
    draft.setAttribute('aria-label', `Edit message ${this.m.seq}`);
    draft.setAttribute('aria-describedby', 'edit-hint');
    draft.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        void this.save();
      } else if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        this.stopEditing();
      }
    });
    this.draft = draft;
    const row = part('div', 'editor');
    row.append(
      draft,
      button('Save', () => void this.save()),
      button('Cancel', () => this.stopEditing(), { className: 'secondary' }),
    );
    return row;
  }

  reactionButton(r) {
    const known = BY_KEY.get(r.key);
    const mine = r.userIds.includes(this.me);
    const b = button(`${known ? known.emoji : r.key} ${r.count}`, () => void this.react(r.key, !mine), {
      className: 'reaction',
      testid: 'reaction',
    });
    b.dataset.key = r.key;
    b.dataset.count = String(r.count);
    b.setAttribute('aria-pressed', mine ? 'true' : 'false');
    b.setAttribute('aria-label', `${known ? known.name : r.key}: ${r.count}`);
    b.title = r.userIds.join(', ');
    return b;
  }

  controlNodes(deleted) {
    const { m } = this;
    const nodes = [];
    if (!deleted) {
      const add = button('React', () => this.setPicking(!this.picking), { testid: 'reaction-add', className: 'secondary' });
      add.setAttribute('aria-expanded', String(this.picking));
      nodes.push(add);
      if (this.picking) nodes.push(this.picker());
    }
    if (m.parentSeq == null && this.view !== 'reply')
      nodes.push(button('Reply', () => this.actions.openThread(m.seq), { testid: 'reply', className: 'secondary' }));
    if (m.replyCount > 0) {
      const text = `${m.replyCount} ${m.replyCount === 1 ? 'reply' : 'replies'}`;
      const count =
        this.view === 'main' ? button(text, () => this.actions.openThread(m.seq), { className: 'link' }) : part('span', 'reply-count');
      count.dataset.testid = 'reply-count';
      count.textContent = text;
      nodes.push(count);
    }
    const mine = m.senderId === this.me;
    if ((mine || this.moderating()) && !deleted && !this.editing) {
      if (this.confirming) {
        const ask = part('span', 'ask');
        ask.textContent = 'Delete this message?';
        nodes.push(
          ask,
          button('Delete', () => void this.remove(), { testid: 'confirm-delete', className: 'danger' }),
          button('Keep', () => this.setConfirming(false, 'message-delete'), { className: 'secondary' }),
        );
      } else {
        if (mine) nodes.push(button('Edit', () => this.startEditing(), { testid: 'message-edit', className: 'secondary' }));
        const remove = button('Delete', () => this.setConfirming(true, 'confirm-delete'), {
          testid: 'message-delete',
          className: 'secondary',
        });
        if (!mine) remove.setAttribute('aria-label', `Delete ${m.senderId}'s message (moderator)`);
        nodes.push(remove);
      }
    }
    return nodes;
  }

  picker() {
    const group = part('span', 'picker');
    group.setAttribute('role', 'group');
    group.setAttribute('aria-label', 'Pick a reaction');
    for (const r of REACTIONS) {
      const mine = this.m.reactions.some((x) => x.key === r.key && x.userIds.includes(this.me));
      const b = button(r.emoji, () => void this.react(r.key, !mine, 'reaction-add'), { testid: 'reaction-option' });
      b.dataset.key = r.key;
      b.setAttribute('aria-label', r.name);
      b.setAttribute('aria-pressed', String(mine));
      group.append(b);
    }
    return group;
  }

  onKey(e) {
    if (e.key !== 'Escape') return;
    if (this.picking) this.setPicking(false);
    else if (this.confirming) this.setConfirming(false, 'message-delete');
  }

  setPicking(on) {
    this.picking = on;
    this.render();
    this.refocus(on ? 'reaction-option|+1' : 'reaction-add|');
  }

  setConfirming(on, focus) {
    this.confirming = on;
    this.render();
    this.refocus(`${focus}|`);
  }

  startEditing() {
    this.editing = true;
    this.confirming = this.picking = false;
    this.render();
    this.draft.focus();
    this.draft.setSelectionRange(this.draft.value.length, this.draft.value.length);
  }

  stopEditing() {
    this.editing = false;
    this.draft = null;
    this.render();
    this.refocus('message-edit|');
  }

  async save() {
    const body = this.draft.value;
    if (body.trim() === '') return this.actions.error(new Error('a message cannot be empty: delete it instead'));
    if (body === this.m.body) return this.stopEditing();
    try {
      await this.actions.edit(this.m, body, parseMentions(body));
      if (this.editing) this.stopEditing();
    } catch (err) {
      this.actions.error(err);
    }
  }

  async remove() {
    try {
      await this.actions.remove(this.m);
    } catch (err) {
      this.actions.error(err);
    }
  }

  async react(key, on, focusAfter) {
    if (focusAfter) {
      this.picking = false;
      this.render();
      this.refocus(`${focusAfter}|`);
    }
    try {
      await this.actions.react(this.m, key, on);
    } catch (err) {
      this.actions.error(err);
    }
  }

  /** Focuses the control named by a focus key (its testid and data-key), or the message itself. */
  refocus(key) {
    const [testid, dataKey] = key.split('|');
    const target = [...this.li.querySelectorAll(`[data-testid="${testid}"]`)].find((e) => (e.dataset.key ?? '') === dataKey);
    (target ?? this.li).focus();
  }
}

function focusKey(e) {
  return e.dataset?.testid ? `${e.dataset.testid}|${e.dataset.key ?? ''}` : null;
}

function setData(e, name, value) {
  if (value === null) delete e.dataset[name];
  else e.dataset[name] = value;
}
