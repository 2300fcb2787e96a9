import { StagingRing } from './staging-ring.js';

const region = (bytes: number): Uint8Array => new Uint8Array(bytes);
const offset = (buf: Uint8Array | undefined): number => buf!.byteOffset;

test('buffers are cut in order and reused once given back, wrapping to the start', () => {
  const ring = new StagingRing(region(100));
  const a = ring.take(40), b = ring.take(40);
  expect([offset(a), offset(b)]).toEqual([0, 40]);
  expect(ring.take(30)).toBeUndefined(); // 20 left at the end, none before the oldest
  ring.give(a!);
  const c = ring.take(30); // does not fit after b (20 left): wraps into a's place
  expect(offset(c)).toBe(0);
  expect(ring.take(15)).toBeUndefined(); // the gap between c (ends at 30) and b (starts at 40) is 10
  expect(offset(ring.take(10))).toBe(30);
  ring.give(b!);
  expect(ring.bytesInUse).toBe(40);
  expect(offset(ring.take(60))).toBe(40);
});

test('a buffer given back out of order is freed when those before it are', () => {
  const ring = new StagingRing(region(90));
  const [a, b, c] = [ring.take(30), ring.take(30), ring.take(30)];
  ring.give(b!);
  expect(ring.take(10)).toBeUndefined(); // a still holds the region's start
  ring.give(a!);
  expect(offset(ring.take(60))).toBe(0); // a and b both free now
  ring.give(c!);
  ring.give(c!); // twice: ignored
  expect(ring.bytesInUse).toBe(60);
});

test('sizes it cannot hold and foreign buffers are refused or ignored', () => {
  const ring = new StagingRing(region(64));
  expect(ring.take(65)).toBeUndefined();
  expect(ring.take(0)).toBeUndefined();
  expect(ring.take(-1)).toBeUndefined();
  const all = ring.take(64);
  expect(all?.byteLength).toBe(64);
  expect(ring.take(1)).toBeUndefined();
  ring.give(new Uint8Array(64)); // not from the ring
  expect(ring.bytesInUse).toBe(64);
  ring.give(all!);
  expect(ring.bytesInUse).toBe(0);
  expect(offset(ring.take(64))).toBe(0);
});

test('a long run of mixed sizes never hands out overlapping live buffers', () => {
  const ring = new StagingRing(region(1000));
  const live: Uint8Array[] = [];
  let seed = 7;
  const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 300;
  for (let i = 0; i < 2000; i++) {
    const buf = ring.take(1 + next());
    if (buf) live.push(buf);
    if (!buf || live.length > 4) ring.give(live.shift()!);
    const spans = live.map((b) => [b.byteOffset, b.byteOffset + b.byteLength] as const).sort((x, y) => x[0] - y[0]);
    for (let j = 1; j < spans.length; j++) expect(spans[j]![0]).toBeGreaterThanOrEqual(spans[j - 1]![1]);
  }
});
