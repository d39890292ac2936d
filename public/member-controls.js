// A moderator's controls on another user's entry in the presence list (docs/page.md, "Moderators").
import { button } from './dom.js';

const ACTIONS = [
  ['mute', 'Mute'],
  ['unmute', 'Unmute'],
  ['kick', 'Kick'],
  ['ban', 'Ban'],
];

/** Buttons `member-mute`, `member-unmute`, `member-kick`, `member-ban` for `userId`; a click runs `act(action, userId)`. */
export function memberControls(userId, act) {
  const group = document.createElement('span');
  group.className = 'member-controls';
  group.setAttribute('role', 'group');
  group.setAttribute('aria-label', `Moderate ${userId}`);
  for (const [action, label] of ACTIONS) {
    const b = button(label, () => void act(action, userId), {
      testid: `member-${action}`,
      className: action === 'ban' ? 'danger' : 'secondary',
    });
    b.setAttribute('aria-label', `${label} ${userId}`);
    group.append(b);
  }
  return group;
}
