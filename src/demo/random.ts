// A small deterministic PRNG (mulberry32): the demo's sample SaaS and the tests'
// workloads replay exactly from a seed, so a failing run can be repeated.

/** A generator of floats in [0, 1) from a 32-bit seed. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
