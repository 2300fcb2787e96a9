// The host inputs of one step, packed into one buffer that jb_run uploads in one copy before the
// step's kernels run. Sections in a fixed order, so a decode step of a given batch size always has
// the same layout (its CUDA graph reads them at the same addresses); the block tables, whose width
// varies with the longest sequence, come last.
//
//   meta          [seqs × 8] i32   per sequence (JB_META_*): row start, rows, cached, slot, table offset, context
//   rowSeq        [rows] i32       the sequence of each row
//   ids           [rows] i32       token ids
//   sampleRows    [samples] i32    rows whose logits are sampled
//   sampling      [samples × 8]    SamplingRow (f32/i32/u32 words)
//   prefillTiles  [tiles × 2] i32  (sequence, first row) of each 64-row query tile of multi-row sequences, by last key
//   decodeSeqs    [decodes] i32    sequences with one row this step
//   blockTables   [seqs × width] i32
import type { SequenceSegment, StepInputs } from '../backend.js';

/** Query rows per prefill attention tile (the kernel's tile height). */
export const PREFILL_TILE_ROWS = 64;
const META_INTS = 8;
const SAMPLE_WORDS = 8;
const ALIGN = 256;

export interface PayloadLayout {
  meta: number;
  rowSeq: number;
  ids: number;
  sampleRows: number;
  sampling: number;
  prefillTiles: number;
  decodeSeqs: number;
  blockTables: number;
  /** Bytes in use. */
  bytes: number;
  numSeqs: number;
  numRows: number;
  numSamples: number;
  numPrefillTiles: number;
  numDecode: number;
  /** All sequences decode one token and every one is sampled: a step shape worth a CUDA graph. */
  pureDecode: boolean;
}

const align = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;

/** Bytes the payload of a step with these bounds can take (sizes the device region). */
export function payloadBound(maxRows: number, maxSeqs: number, maxBlocksPerSeq: number): number {
  const tiles = Math.ceil(maxRows / PREFILL_TILE_ROWS) + maxSeqs;
  return (
    align(maxSeqs * META_INTS * 4) + 2 * align(maxRows * 4) + align(maxSeqs * 4) + align(maxSeqs * SAMPLE_WORDS * 4) + align(tiles * 8) +
    align(maxSeqs * 4) + align(maxSeqs * maxBlocksPerSeq * 4)
  );
}

/**
 * (sequence, first row) of each 64-row query tile of the multi-row sequences, by the last key a tile
 * reads, ascending (stable): the prefill kernel takes them from the end, longest first.
 */
export function prefillTiles(seqs: readonly SequenceSegment[]): number[] {
  const tiles: { seq: number; row: number; lastKey: number }[] = [];
  seqs.forEach((s, seq) => {
    if (s.numRows === 1) return;
    for (let r = 0; r < s.numRows; r += PREFILL_TILE_ROWS)
      tiles.push({ seq, row: s.rowStart + r, lastKey: s.cachedLen + Math.min(r + PREFILL_TILE_ROWS, s.numRows) - 1 });
  });
  tiles.sort((a, b) => a.lastKey - b.lastKey);
  return tiles.flatMap((t) => [t.seq, t.row]);
}

export function packStep(inputs: StepInputs, into?: Uint8Array): { layout: PayloadLayout; bytes: Uint8Array } {
  const { batch, tokenIds, sampleRows, sampling } = inputs;
  const seqs = batch.segments;
  let width = 1;
  for (const s of seqs) width = Math.max(width, s.blockTable.length);
  const tiles = prefillTiles(seqs);
  const decodes: number[] = [];
  seqs.forEach((s, i) => {
    if (s.numRows === 1) decodes.push(i);
  });
  let at = 0;
  const section = (bytes: number): number => {
    const start = at;
    at += align(bytes);
    return start;
  };
  const layout: PayloadLayout = {
    meta: section(seqs.length * META_INTS * 4),
    rowSeq: section(batch.numRows * 4),
    ids: section(batch.numRows * 4),
    sampleRows: section(sampleRows.length * 4),
    sampling: section(sampling.length * SAMPLE_WORDS * 4),
    prefillTiles: section(tiles.length * 4),
    decodeSeqs: section(decodes.length * 4),
    blockTables: section(seqs.length * width * 4),
    bytes: 0,
    numSeqs: seqs.length,
    numRows: batch.numRows,
    numSamples: sampleRows.length,
    numPrefillTiles: tiles.length / 2,
    numDecode: decodes.length,
    pureDecode: seqs.length > 0 && decodes.length === seqs.length && sampleRows.length === seqs.length,
  };
  layout.bytes = at;
  const bytes = into && into.byteLength >= at ? into.subarray(0, at) : new Uint8Array(at);
  const i32 = new Int32Array(bytes.buffer, bytes.byteOffset, at / 4);
  const u32 = new Uint32Array(bytes.buffer, bytes.byteOffset, at / 4);
  const f32 = new Float32Array(bytes.buffer, bytes.byteOffset, at / 4);
  seqs.forEach((s, i) => {
    const m = layout.meta / 4 + i * META_INTS;
    i32[m] = s.rowStart;
    i32[m + 1] = s.numRows;
    i32[m + 2] = s.cachedLen;
    i32[m + 3] = s.stateSlot;
    i32[m + 4] = i * width;
    i32[m + 5] = s.cachedLen + s.numRows;
    i32[m + 6] = 0;
    i32[m + 7] = 0;
    i32.fill(i, layout.rowSeq / 4 + s.rowStart, layout.rowSeq / 4 + s.rowStart + s.numRows);
    const table = layout.blockTables / 4 + i * width;
    i32.set(s.blockTable, table);
    i32.fill(0, table + s.blockTable.length, table + width);
  });
  i32.set(tokenIds, layout.ids / 4);
  i32.set(sampleRows, layout.sampleRows / 4);
  sampling.forEach((r, i) => {
    const w = layout.sampling / 4 + i * SAMPLE_WORDS;
    f32[w] = r.temperature;
    f32[w + 1] = r.topP;
    i32[w + 2] = r.topK;
    f32[w + 3] = r.minP;
    u32[w + 4] = r.seed >>> 0;
    u32[w + 5] = r.counter >>> 0;
    i32[w + 6] = r.logprobs;
    i32[w + 7] = 0;
  });
  i32.set(tiles, layout.prefillTiles / 4);
  i32.set(decodes, layout.decodeSeqs / 4);
  return { layout, bytes };
}
