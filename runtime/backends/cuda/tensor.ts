// The CUDA backend's handles: device pointers with shape, element type and row stride (a column
// split is a view: same rows, a column offset, the parent's stride).
import type { DType, ExpertSet, KvCache, MambaState, Tensor } from '../backend.js';
import { BYTES, type DeviceMatrix, type NativeDType } from './program.js';

export class CudaTensor implements Tensor, DeviceMatrix {
  constructor(
    readonly ptr: number,
    readonly dtype: DType,
    readonly shape: readonly number[],
    /** Elements between the starts of consecutive rows. */
    readonly ld: number = shape.length < 2 ? shape[0] ?? 1 : shape.slice(1).reduce((a, b) => a * b, 1),
  ) {}

  get rows(): number {
    return this.shape.length < 2 ? 1 : this.shape[0]!;
  }

  get cols(): number {
    return this.shape.length < 2 ? (this.shape[0] ?? 1) : this.shape.slice(1).reduce((a, b) => a * b, 1);
  }

  get contiguous(): boolean {
    return this.ld === this.cols;
  }

  get bytes(): number {
    return this.rows * this.cols * BYTES[this.dtype as NativeDType];
  }

  /** Columns [from, from + width) of every row, without a copy. */
  columns(from: number, width: number): CudaTensor {
    return new CudaTensor(this.ptr + from * BYTES[this.dtype as NativeDType], this.dtype, [this.rows, width], this.ld);
  }
}

/** The bytes a matrix spans, from its first element to past its last. */
function span(m: DeviceMatrix): [number, number] {
  return [m.ptr, m.ptr + ((m.rows - 1) * m.ld + m.cols) * BYTES[m.dtype]];
}

/** Whether two matrices share any byte. */
export function overlaps(a: DeviceMatrix, b: DeviceMatrix): boolean {
  const [a0, a1] = span(a);
  const [b0, b1] = span(b);
  return a0 < b1 && b0 < a1;
}

/** The same elements in the same layout. */
export function sameMatrix(a: DeviceMatrix, b: DeviceMatrix): boolean {
  return a.ptr === b.ptr && a.dtype === b.dtype && a.rows === b.rows && a.cols === b.cols && a.ld === b.ld;
}

export function cuda(t: Tensor, op: string, ...dtypes: DType[]): CudaTensor {
  if (!(t instanceof CudaTensor)) throw new Error(`${op}: tensor does not belong to the cuda backend`);
  if (dtypes.length > 0 && !dtypes.includes(t.dtype)) throw new Error(`${op}: expected ${dtypes.join(' or ')} tensor, got ${t.dtype} [${t.shape.join(', ')}]`);
  return t;
}

export class CudaKvCache implements KvCache {
  constructor(
    readonly k: number,
    readonly v: number,
    readonly numBlocks: number,
    readonly blockSize: number,
    readonly numKvHeads: number,
    readonly headDim: number,
  ) {}
  get bytes(): number {
    return 2 * this.numBlocks * this.blockSize * this.numKvHeads * this.headDim * 2;
  }
}

export class CudaMambaState implements MambaState {
  constructor(
    /** bf16 [slots, dInner, dConv-1], oldest input first. */
    readonly conv: number,
    /** fp32 [slots, dInner, dState]. */
    readonly ssm: number,
    readonly numSlots: number,
    readonly dInner: number,
    readonly dConv: number,
    readonly dState: number,
  ) {}
  get convSlotBytes(): number {
    return this.dInner * (this.dConv - 1) * 2;
  }
  get ssmSlotBytes(): number {
    return this.dInner * this.dState * 4;
  }
  get bytes(): number {
    return this.numSlots * (this.convSlotBytes + this.ssmSlotBytes);
  }
}

/** One MoE layer's experts: a device table of 6 pointers per expert (gate, up, down, and their scales). */
export class CudaExpertSet implements ExpertSet {
  constructor(
    readonly table: number,
    readonly numExperts: number,
    readonly hidden: number,
    readonly ffn: number,
    readonly weightDtype: 'bf16' | 'i8',
  ) {}
}
