/** Deeper request data is refused before any handler walks it. */
export const MAX_DATA_DEPTH = 32;

/**
 * The top-level fields of `data` that nest deeper than the bound allows, named for
 * VALIDATION_FAILED's details.fields; null when `data` is within the bound.
 */
export function fieldsNestedTooDeep(data: unknown, max = MAX_DATA_DEPTH): string[] | null {
  if (!nestsDeeperThan(data, max)) return null;
  if (typeof data !== 'object' || data === null) return [];
  return Object.entries(data).flatMap(([key, value]) => (nestsDeeperThan(value, max - 1) ? [key] : []));
}

/** Walks `value` iteratively (so hostile nesting cannot overflow the stack) and reports whether it nests deeper than `max`. */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (typeof node !== 'object' || node === null) continue;
    if (depth > max) return true;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return false;
}
