// The CPU backend's tensors: a host typed array plus its shape. Row-major, contiguous.
import type { DType, KvCache, MambaState, Tensor } from '../backend.js';

export type HostArray = Float32Array | Int8Array | Int32Array;

export class CpuTensor implements Tensor {
  constructor(
    readonly data: HostArray,
    readonly shape: readonly number[],
  ) {
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== data.length) {
      throw new Error(`cpu tensor: shape [${shape.join(', ')}] needs ${size} elements, array has ${data.length}`);
    }
  }

  get dtype(): DType {
    if (this.data instanceof Float32Array) return 'f32';
    if (this.data instanceof Int8Array) return 'i8';
    return 'i32';
  }

  get rows(): number {
    return this.shape[0] ?? 1;
  }

  /** Elements per row (product of all dimensions but the first). */
  get cols(): number {
    return this.shape.length < 2 ? 1 : this.data.length / this.rows;
  }
}

export function f32(rows: number, cols: number): CpuTensor {
  return new CpuTensor(new Float32Array(rows * cols), [rows, cols]);
}

/** Unwraps a handle into this backend's tensor and checks its dtype (and rank-2 shape if `cols` given). */
export function cpu(t: Tensor, op: string, dtype: DType = 'f32'): CpuTensor {
  if (!(t instanceof CpuTensor)) throw new Error(`${op}: tensor does not belong to the cpu backend`);
  if (t.dtype !== dtype) throw new Error(`${op}: expected ${dtype} tensor, got ${t.dtype} [${t.shape.join(', ')}]`);
  return t;
}

export function f32Data(t: Tensor, op: string): Float32Array {
  return cpu(t, op, 'f32').data as Float32Array;
}

export class CpuKvCache implements KvCache {
  /** [numBlocks, blockSize, numKvHeads, headDim] each. */
  readonly k: Float32Array;
  readonly v: Float32Array;
  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
    readonly numKvHeads: number,
    readonly headDim: number,
  ) {
    const size = numBlocks * blockSize * numKvHeads * headDim;
    this.k = new Float32Array(size);
    this.v = new Float32Array(size);
  }
  get bytes(): number {
    return this.k.byteLength + this.v.byteLength;
  }
}

export class CpuMambaState implements MambaState {
  /** [numSlots, dInner, dConv-1]: the last dConv-1 conv inputs, oldest first. */
  readonly conv: Float32Array;
  /** [numSlots, dInner, dState]. */
  readonly ssm: Float32Array;
  constructor(
    readonly numSlots: number,
    readonly dInner: number,
    readonly dConv: number,
    readonly dState: number,
  ) {
    this.conv = new Float32Array(numSlots * dInner * (dConv - 1));
    this.ssm = new Float32Array(numSlots * dInner * dState);
  }
  get bytes(): number {
    return this.conv.byteLength + this.ssm.byteLength;
  }
  resetSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.numSlots) {
      throw new Error(`mamba state: slot ${slot} outside 0..${this.numSlots - 1}`);
    }
    const convSize = this.dInner * (this.dConv - 1);
    const ssmSize = this.dInner * this.dState;
    this.conv.fill(0, slot * convSize, (slot + 1) * convSize);
    this.ssm.fill(0, slot * ssmSize, (slot + 1) * ssmSize);
  }
}
