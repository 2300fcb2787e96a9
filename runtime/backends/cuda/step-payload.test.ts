// The prefill tile list of a step: every query row of the multi-row sequences in exactly one tile, and the
// tiles by the last key they read, ascending, which the persistent prefill kernel takes from the end.
import type { SequenceSegment } from '../backend.js';
import { PREFILL_TILE_ROWS, packStep, prefillTiles } from './step-payload.js';

const seg = (rowStart: number, numRows: number, cachedLen: number): SequenceSegment => ({
  rowStart,
  numRows,
  cachedLen,
  stateSlot: 0,
  blockTable: Int32Array.of(0),
});

test('tiles cover every row of the multi-row sequences once, by their last key', () => {
  // A fresh 150-row prompt, a decode row, and a 70-row chunk after 100 cached tokens.
  const seqs = [seg(0, 150, 0), seg(150, 1, 40), seg(151, 70, 100)];
  const flat = prefillTiles(seqs);
  const tiles = Array.from({ length: flat.length / 2 }, (_, i) => ({ seq: flat[2 * i]!, row: flat[2 * i + 1]! }));
  expect(tiles).toEqual([
    { seq: 0, row: 0 }, // keys to 63
    { seq: 0, row: 64 }, // to 127
    { seq: 0, row: 128 }, // to 149
    { seq: 2, row: 151 }, // to 163
    { seq: 2, row: 215 }, // to 169
  ]);
  const lastKeys = tiles.map(({ seq, row }) => {
    const s = seqs[seq]!;
    return s.cachedLen + Math.min(row - s.rowStart + PREFILL_TILE_ROWS, s.numRows) - 1;
  });
  expect(lastKeys).toEqual([...lastKeys].sort((a, b) => a - b));
});

test('equal last keys keep the order of the batch', () => {
  const flat = prefillTiles([seg(0, 64, 0), seg(64, 64, 0), seg(128, 32, 32)]);
  expect(flat).toEqual([0, 0, 1, 64, 2, 128]);
});

test('the packed step carries the sorted list', () => {
  const batch = { numRows: 221, segments: [seg(0, 150, 0), seg(150, 1, 40), seg(151, 70, 100)] };
  const { layout, bytes } = packStep({ batch, tokenIds: new Int32Array(221), sampleRows: new Int32Array(0), sampling: [] });
  const i32 = new Int32Array(bytes.buffer, bytes.byteOffset + layout.prefillTiles, layout.numPrefillTiles * 2);
  expect(layout.numPrefillTiles).toBe(5);
  expect(Array.from(i32)).toEqual(prefillTiles(batch.segments));
  expect(Array.from(new Int32Array(bytes.buffer, bytes.byteOffset + layout.decodeSeqs, layout.numDecode))).toEqual([1]);
});
