// The chunk plan: ranges that cover a file exactly, a ramp that makes the first ranges end one after another.
import { choosePlan, chunkAt, parsePlan, planChunks, type Chunk } from './chunk-plan.js';

const MiB = 1024 * 1024;

function expectCovers(chunks: Chunk[], size: number): void {
  let next = 0;
  chunks.forEach((c, i) => {
    expect(c.index).toBe(i);
    expect(c.start).toBe(next);
    expect(c.length).toBeGreaterThan(0);
    next += c.length;
  });
  expect(next).toBe(size);
}

describe('planChunks', () => {
  test('without a ramp: full ranges, the last one short', () => {
    const chunks = planChunks(100 * MiB + 5, { chunkBytes: 32 * MiB, ramp: 1 });
    expect(chunks.map((c) => c.length)).toEqual([32 * MiB, 32 * MiB, 32 * MiB, 4 * MiB + 5]);
  });

  test('a ramp of 4: ranges of 1/4, 2/4, 3/4 of a full one, then full ones; the four that start together end a quarter apart', () => {
    const size = 256 * MiB;
    const chunks = planChunks(size, { chunkBytes: 32 * MiB, ramp: 4 });
    expectCovers(chunks, size);
    expect(chunks.slice(0, 4).map((c) => c.length / MiB)).toEqual([8, 16, 24, 32]);
    expect(chunks.slice(3, -1).every((c) => c.length === 32 * MiB)).toBe(true);
    // Each range that starts in a slot freed by the one before it ends 8 MiB of transfer after it (equal rates).
    const ends = chunks.slice(0, 4).map((c) => c.length);
    expect(ends.map((e, i) => (i ? e - ends[i - 1]! : e))).toEqual([8 * MiB, 8 * MiB, 8 * MiB, 8 * MiB]);
  });

  test('ramp steps are whole 64 KiB granules, and any size is covered exactly', () => {
    for (const size of [1, 65535, 65536, 3 * MiB + 17, 100 * MiB + 12345]) {
      for (const plan of [{ chunkBytes: MiB, ramp: 3 }, { chunkBytes: 5 * MiB + 7, ramp: 16 }, { chunkBytes: 64 * 1024, ramp: 2 }]) {
        const chunks = planChunks(size, plan);
        expectCovers(chunks, size);
        for (const c of chunks.slice(0, Math.max(0, Math.min(plan.ramp - 1, chunks.length - 1)))) expect(c.length % 65536).toBe(0);
      }
    }
  });
});

describe('chunkAt', () => {
  test('finds the chunk of every byte, none past the end', () => {
    const size = 10 * MiB + 3;
    const chunks = planChunks(size, { chunkBytes: 2 * MiB, ramp: 4 });
    for (const c of chunks) {
      for (const pos of [c.start, c.start + c.length - 1]) expect(chunkAt(chunks, pos)).toBe(c);
    }
    expect(chunkAt(chunks, size)).toBeUndefined();
  });
});

describe('choosePlan', () => {
  test('ramps over the ranges that will start together, but only where the file has that many full ranges', () => {
    expect(choosePlan(256 * MiB, 32 * MiB, 4)).toEqual({ chunkBytes: 32 * MiB, ramp: 4 });
    expect(choosePlan(256 * MiB, 32 * MiB, 16)).toEqual({ chunkBytes: 32 * MiB, ramp: 8 });
    expect(choosePlan(40 * MiB, 32 * MiB, 4)).toEqual({ chunkBytes: 32 * MiB, ramp: 1 });
    expect(choosePlan(10 * MiB, 32 * MiB, 4)).toEqual({ chunkBytes: 32 * MiB, ramp: 1 });
  });
  test('a file fetched one range at a time has no ramp', () => {
    expect(choosePlan(1024 * MiB, 32 * MiB, 1)).toEqual({ chunkBytes: 32 * MiB, ramp: 1 });
  });
});

describe('parsePlan', () => {
  test('accepts what a run recorded, with records of older runs (no ramp) read as ramp 1', () => {
    expect(parsePlan({ chunkBytes: 1024, ramp: 3 })).toEqual({ chunkBytes: 1024, ramp: 3 });
    expect(parsePlan({ chunkBytes: 1024 })).toEqual({ chunkBytes: 1024, ramp: 1 });
  });
  test('refuses a record it could not have written', () => {
    for (const bad of [{}, { chunkBytes: 0 }, { chunkBytes: 1.5 }, { chunkBytes: '1024' }, { chunkBytes: 1024, ramp: 0 }, { chunkBytes: 1024, ramp: 'x' }]) {
      expect(parsePlan(bad)).toBeUndefined();
    }
  });
});
