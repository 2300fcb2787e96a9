// ExpertsInt8 weights on the device live in 16 × 64 tiles (runtime/native/src/int8_tiles.cuh says why and
// how); this is the host side of that layout: how many bytes a weight takes and how to read one back.
import type { Tensor } from '../backend.js';
import { CudaTensor } from './tensor.js';

const TILE_ROWS = 16;
const TILE_COLS = 64;

export const tiledInt8Bytes = (rows: number, cols: number): number => Math.ceil(rows / TILE_ROWS) * TILE_ROWS * Math.ceil(cols / TILE_COLS) * TILE_COLS;

/** The same formula as int8_tile_offset in int8_tiles.cuh. */
function tileOffset(r: number, k: number, paddedCols: number): number {
  return ((r >> 4) * (paddedCols >> 6) + (k >> 6)) * 1024 + ((r >> 3) & 1) * 512 + (((r & 7) << 2) + ((k >> 4) & 3)) * 16 + (k & 15);
}

/** Row-major [rows, cols] values of a tiled weight's bytes. */
export function untileInt8(tiled: Int8Array, rows: number, cols: number): Int8Array {
  const paddedCols = Math.ceil(cols / TILE_COLS) * TILE_COLS;
  const out = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) out[r * cols + k] = tiled[tileOffset(r, k, paddedCols)]!;
  return out;
}

/** An int8 weight [rows, cols] in the tiled layout (made by the device quantizer; no column views). */
export class CudaTiledInt8 extends CudaTensor {
  constructor(ptr: number, rows: number, cols: number) {
    super(ptr, 'i8', [rows, cols]);
  }

  override get bytes(): number {
    return tiledInt8Bytes(this.rows, this.cols);
  }

  override columns(): CudaTensor {
    throw new Error('an int8 weight in tiles has no column views');
  }
}

/** An int8 weight of this backend, which is always tiled (the kernels read no other layout). */
export function tiledInt8(t: Tensor, op: string): CudaTiledInt8 {
  if (!(t instanceof CudaTiledInt8)) throw new Error(`${op}: int8 weights must come from uploadInt8Matrix or randomInt8Matrix of the cuda backend`);
  return t;
}
