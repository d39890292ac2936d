/**
 * The one rule for every string that is stored. Postgres text refuses NUL (SQLSTATE 22021) and
 * jsonb refuses the \u0000 escape (22P05); a lone UTF-16 surrogate cannot be encoded as UTF-8, so
 * node-postgres sends U+FFFD in its place (text is silently altered) and jsonb refuses its \ud800
 * escape (22P02). Refusing both up front answers the client VALIDATION_FAILED instead of a
 * database error that would read as UNAVAILABLE and be retried forever.
 */
export function storableTextIssue(s: string): string | undefined {
  if (s.includes('\u0000')) return 'must not contain NUL';
  if (!s.isWellFormed()) return 'must be well-formed Unicode (no lone surrogates)';
  return undefined;
}

/** Where in a JSON value the rule is broken: the path to the value (or key) and the issue. */
export interface JsonTextIssue {
  path: (string | number)[];
  message: string;
}

/** The rule applied to every key and string value of a JSON value, at any depth (stored as jsonb). */
export function storableJsonIssue(value: unknown, path: (string | number)[] = []): JsonTextIssue | undefined {
  if (typeof value === 'string') {
    const message = storableTextIssue(value);
    return message ? { path, message } : undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const entries: [string | number, unknown][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  for (const [key, item] of entries) {
    const keyIssue = typeof key === 'string' ? storableTextIssue(key) : undefined;
    if (keyIssue) return { path, message: `a key ${keyIssue}` };
    const issue = storableJsonIssue(item, [...path, key]);
    if (issue) return issue;
  }
  return undefined;
}
