// A moderator's controls (docs/page.md, "Moderators"): on another user's entry in the presence
// list, and on each entry of the list of banned users. What they offer follows the room's mutes
// and bans as moderation.list last answered, so Unmute is offered only for a muted user and Unban
// only for a banned one, with the time left.
import { button, part } from './dom.js';
import { duration, secondsUntil } from './time-left.js';

const LABELS = { mute: 'Mute', unmute: 'Unmute', kick: 'Kick', ban: 'Ban', unban: 'Unban' };

/**
 * Buttons for `userId`, a click running `act(action, userId)`: `member-mute` or, with the time
 * left, `member-unmute`, then `member-kick` and `member-ban`. `mute` is the user's mute
 * (`{ until }`), null when not muted, or undefined when the page could not learn the room's
 * mutes, which offers both.
 */
export function memberControls(userId, act, mute) {
  const group = document.createElement('span');
  group.className = 'member-controls';
  group.setAttribute('role', 'group');
  group.setAttribute('aria-label', `Moderate ${userId}`);
  group.dataset.mute = muteKey(mute);
  if (mute) group.append(sanctionLabel('muted', mute.until));
  const toggle = mute === undefined ? ['mute', 'unmute'] : [mute ? 'unmute' : 'mute'];
  for (const action of [...toggle, 'kick', 'ban']) group.append(control(action, userId, act));
  return group;
}

/** What memberControls drew for `mute`: the same key means the same buttons. */
export function muteKey(mute) {
  return mute === undefined ? 'unknown' : mute ? `until ${mute.until}` : 'none';
}

/** An entry (`data-user`) of the banned users' list: who, the time left, why, and `member-unban`. */
export function bannedItem(ban, act) {
  const li = document.createElement('li');
  li.dataset.user = ban.userId;
  const name = document.createElement('span');
  name.textContent = ban.userId;
  li.append(name, sanctionLabel('banned', ban.until));
  if (ban.reason) {
    const why = part('span', 'sanction-reason');
    why.textContent = ban.reason;
    li.append(why);
  }
  li.append(control('unban', ban.userId, act));
  return li;
}

/** Redraws the time left of every sanction with an end shown in `root`. */
export function redrawTimeLeft(root) {
  for (const label of root.querySelectorAll('.sanction[data-until]')) drawLabel(label);
}

function control(action, userId, act) {
  const label = LABELS[action];
  const b = button(label, () => void act(action, userId), {
    testid: `member-${action}`,
    className: action === 'ban' ? 'danger' : 'secondary',
  });
  b.setAttribute('aria-label', `${label} ${userId}`);
  return b;
}

/** "muted, 9 min left" or "banned until lifted"; `until` is ISO 8601 or null. */
function sanctionLabel(what, until) {
  const label = part('span', 'sanction');
  label.dataset.what = what;
  if (until !== null) label.dataset.until = until;
  drawLabel(label);
  return label;
}

function drawLabel(label) {
  const { what, until } = label.dataset;
  label.textContent =
    until === undefined ? `${what} until lifted` : `${what}, ${duration(Math.max(1, secondsUntil(Date.parse(until))))} left`;
}
