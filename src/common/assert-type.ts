/** A compile-time check: `Assert<X>` fails to compile unless X is `true`. */
export type Assert<T extends true> = T;

/** True when the list `L` names every member of the union `U`. */
export type ListsAll<U, L> = [Exclude<U, L>] extends [never] ? true : false;
