/** A compile-time check: `Assert<X>` fails to compile unless X is `true`. */
export type Assert<T extends true> = T;

/** True when the list `L` names every member of the union `U`. */
export type ListsAll<U, L> = [Exclude<U, L>] extends [never] ? true : false;

/** True when A and B accept the same values: each is assignable to the other. */
export type SameShape<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
