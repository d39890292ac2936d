// Mentions: `@userId` words typed in a composer, and mentioned users shown in a body. Bodies are
// only ever turned into text nodes and spans whose text is set with textContent.

const MAX_MENTIONS = 50;
/** Punctuation that ends a sentence after a mention (`hi @bob, …`) rather than belonging to the id. */
const TRAILING = /[.,!?;:)\]}'"]+$/;

/** The user ids of the `@word`s in a text: each once, in order of first appearance, at most 50. */
export function parseMentions(text) {
  const ids = [];
  for (const match of text.matchAll(/(?:^|\s)@([^\s@]+)/g)) {
    const id = match[1].replace(TRAILING, '');
    if (id && !ids.includes(id)) ids.push(id);
    if (ids.length === MAX_MENTIONS) break;
  }
  return ids;
}

/**
 * Nodes for a body: the first `@id` word of each mentioned user becomes a `mention` element, the
 * rest stays text. A mentioned user the body does not name (possible over the HTTP API) is not shown.
 */
export function bodyNodes(body, mentions, me) {
  const found = [];
  for (const id of new Set(mentions)) {
    const at = findWord(body, `@${id}`);
    if (at >= 0) found.push({ at, id, end: at + id.length + 1 });
  }
  found.sort((a, b) => a.at - b.at);
  const nodes = [];
  let pos = 0;
  for (const f of found) {
    if (f.at < pos) continue; // overlapping ids: the first one wins
    if (f.at > pos) nodes.push(document.createTextNode(body.slice(pos, f.at)));
    const span = document.createElement('span');
    span.dataset.testid = 'mention';
    span.dataset.user = f.id;
    span.className = f.id === me ? 'mention me' : 'mention';
    span.textContent = body.slice(f.at, f.end);
    nodes.push(span);
    pos = f.end;
  }
  if (pos < body.length) nodes.push(document.createTextNode(body.slice(pos)));
  return nodes;
}

/** Where `word` stands as a whole word in `text` (white space or start before, white space, punctuation or end after), or -1. */
function findWord(text, word) {
  for (let at = text.indexOf(word); at >= 0; at = text.indexOf(word, at + 1)) {
    const before = at === 0 || /\s/.test(text[at - 1]);
    const after = /^[.,!?;:)\]}'"]*(\s|$)/.test(text.slice(at + word.length));
    if (before && after) return at;
  }
  return -1;
}
