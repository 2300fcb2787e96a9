import { BlockManager } from './block-manager.js';
import { Sequence, type SamplingParams } from './sequence.js';
import { StateSlotManager } from './state-slots.js';

const params: SamplingParams = { temperature: 0, topP: 1, topK: 0, maxTokens: 4, stop: [], stopTokenIds: [], ignoreEos: false };
const seq = (n: number, id = 's') => new Sequence(id, Array.from({ length: n }, (_, i) => i + 1), params, 0);

describe('BlockManager', () => {
  test.each([
    [1, 1],
    [16, 1],
    [17, 2],
    [33, 3],
  ])('%i tokens take %i blocks of 16', (tokens, blocks) => {
    const bm = new BlockManager(8, 16);
    const s = seq(tokens);
    expect(bm.allocate(s, tokens)).toBe(true);
    expect(s.blockTable).toHaveLength(blocks);
    expect(bm.numUsedBlocks).toBe(blocks);
  });

  test('grows a table on demand, block by block', () => {
    const bm = new BlockManager(4, 4);
    const s = seq(3);
    bm.allocate(s, 3);
    expect(s.blockTable).toEqual([0]);
    bm.allocate(s, 4);
    expect(s.blockTable).toEqual([0]);
    bm.allocate(s, 5);
    expect(s.blockTable).toEqual([0, 1]);
  });

  test('refuses without taking anything when the pool is short, and frees at once', () => {
    const bm = new BlockManager(3, 4);
    const a = seq(8, 'a');
    const b = seq(8, 'b');
    expect(bm.allocate(a, 8)).toBe(true);
    expect(bm.allocate(b, 8)).toBe(false);
    expect(b.blockTable).toEqual([]);
    expect(bm.numFreeBlocks).toBe(1);
    bm.free(a);
    expect(a.blockTable).toEqual([]);
    expect(bm.numFreeBlocks).toBe(3);
    expect(bm.usageRatio).toBe(0);
    expect(bm.allocate(b, 8)).toBe(true);
    expect(bm.usageRatio).toBeCloseTo(2 / 3);
  });
});

describe('StateSlotManager', () => {
  test('hands out each slot once, resets it on reuse, refuses double release', () => {
    const resets: number[] = [];
    const sm = new StateSlotManager(2, (s) => resets.push(s));
    const a = sm.acquire()!;
    const b = sm.acquire()!;
    expect(new Set([a, b])).toEqual(new Set([0, 1]));
    expect(sm.acquire()).toBeUndefined();
    expect(sm.numInUse).toBe(2);
    sm.release(a);
    expect(() => sm.release(a)).toThrow(/released twice/);
    expect(sm.acquire()).toBe(a);
    expect(resets).toEqual([a, b, a]);
  });
});
