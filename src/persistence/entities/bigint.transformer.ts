import type { ValueTransformer } from 'typeorm';

/** pg returns bigint as a string; seqs stay far below 2^53, so a number is exact. */
export const bigintAsNumber: ValueTransformer = {
  to: (v: number | undefined) => v,
  from: (v: string | null) => (v === null ? null : Number(v)),
};
