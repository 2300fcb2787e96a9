// Random numbers for sampling and test data.
// - counterUniform(seed, counter): the sampler's draws. Counter-based (a hash of the request's seed and
//   the index of the token being drawn), so any backend computes the same uniform without state, a seed
//   reproduces its tokens whatever else runs, and a recomputed sequence draws the same tokens again.
//   32-bit integer operations only, written identically in runtime/native/sampling.cu.
// - Xoshiro128: xoshiro128** (Blackman & Vigna), seeded through splitmix32, for test and benchmark data.

/** lowbias32 (Chris Wellons' hash prospector): a full-avalanche 32-bit mix. */
export function mix32(v: number): number {
  let x = v >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * Uniform in (0, 1) for draw number `counter` of the stream `seed` (both uint32). 23 random bits plus
 * a half step, so the value is exact in fp32 and never 0 or 1.
 */
export function counterUniform(seed: number, counter: number): number {
  const bits = mix32(mix32(seed ^ 0x9e3779b9) ^ Math.imul((counter + 1) >>> 0, 0x85ebca6b));
  return ((bits >>> 9) + 0.5) / 8388608;
}

export class Xoshiro128 {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    // splitmix32 spreads any 32-bit seed (including 0) over the 128-bit state.
    let x = seed >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
  }

  /** Next 32 random bits as an unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  nextFloat(): number {
    return this.nextUint32() / 4294967296;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Folds an arbitrary integer seed (possibly negative or beyond 32 bits) into 32 bits. */
export function seedToUint32(seed: number): number {
  const lo = seed % 4294967296;
  const hi = Math.floor(seed / 4294967296);
  return (lo ^ Math.imul(hi, 0x9e3779b1)) >>> 0;
}
