// How a file is cut into ranged requests. A file's sha256 can only advance over its contiguous written
// prefix, so ranges that start together and end together leave all but the first to be hashed after the
// last byte. A ramp (the first `ramp` ranges growing 1/ramp, 2/ramp, … of a full range) makes the ranges
// that start together end one after another, and each full range started in a freed slot after them ends
// as staggered: the hash follows the bytes instead of trailing the file by ramp − 1 ranges.

export interface Chunk {
  index: number;
  start: number;
  length: number;
}

/** Enough to rebuild a file's chunks: recorded beside a partial file, so a restart resumes the same cut. */
export interface ChunkPlan {
  chunkBytes: number;
  /** How many ranges of the file start at once (1: no ramp). */
  ramp: number;
}

/** Ramp steps are whole multiples of this (ranges stay page-aligned). */
const RAMP_GRANULE = 64 * 1024;

/** The plan for a file of `size` bytes fetched `parallel` ranges at a time: a ramp only where it has full ranges to stagger. */
export function choosePlan(size: number, chunkBytes: number, parallel: number): ChunkPlan {
  const fullChunks = Math.floor(size / chunkBytes);
  return { chunkBytes, ramp: Math.max(1, Math.min(parallel, fullChunks, Math.floor(chunkBytes / RAMP_GRANULE))) };
}

export function planChunks(size: number, plan: ChunkPlan): Chunk[] {
  const out: Chunk[] = [];
  let start = 0;
  const push = (length: number): void => {
    out.push({ index: out.length, start, length: Math.min(length, size - start) });
    start += out[out.length - 1]!.length;
  };
  for (let i = 1; i < plan.ramp && start < size; i++) {
    push(Math.max(RAMP_GRANULE, Math.round((plan.chunkBytes * i) / plan.ramp / RAMP_GRANULE) * RAMP_GRANULE));
  }
  while (start < size) push(plan.chunkBytes);
  return out;
}

/** The chunk holding byte `pos` (chunks sorted by start, covering the file). */
export function chunkAt(chunks: Chunk[], pos: number): Chunk | undefined {
  let lo = 0, hi = chunks.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const c = chunks[mid]!;
    if (pos < c.start) hi = mid - 1;
    else if (pos >= c.start + c.length) lo = mid + 1;
    else return c;
  }
  return undefined;
}

/** A recorded plan, if it is one this code could have written. */
export function parsePlan(value: { chunkBytes?: unknown; ramp?: unknown }): ChunkPlan | undefined {
  const { chunkBytes, ramp = 1 } = value;
  if (!Number.isSafeInteger(chunkBytes) || (chunkBytes as number) < 1) return undefined;
  if (!Number.isSafeInteger(ramp) || (ramp as number) < 1) return undefined;
  return { chunkBytes: chunkBytes as number, ramp: ramp as number };
}
