// How the page says how long something has left: a notice's wait, a mute's or a ban's end.

/** `seconds` (at least 1) as "45 s", "9 min" or "2 h 5 min". */
export function duration(seconds) {
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.ceil(seconds / 60);
  return minutes < 60 ? `${minutes} min` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** Whole seconds until `endsAt` (ms), rounded up; 0 or less once it has passed. */
export function secondsUntil(endsAt) {
  return Math.ceil((endsAt - Date.now()) / 1000);
}
