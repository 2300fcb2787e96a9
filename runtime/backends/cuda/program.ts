// A step's ops recorded for the native side (see runtime/native/include/jamba_native.h): each op is
// [opcode, argc, args...] in one Float64Array, handed over in a single jb_run call. Op codes and
// argument lists mirror the header's JB_OPS table (a test parses the header and compares).

export const OP = {
  MEMSET: 0,
  CONVERT: 1,
  EMBED: 2,
  RMSNORM: 3,
  GEMM: 4,
  ADD: 5,
  SILU_MUL: 6,
  GATHER: 7,
  ROUTER: 8,
  MOE: 9,
  INT8_GEMM: 10,
  ATTENTION: 11,
  CONV: 12,
  SCAN: 13,
  SAMPLE: 14,
  TIMER: 15,
  ADD_RMSNORM: 16,
  RMSNORMS: 17,
  ALL_REDUCE: 18,
  ALL_GATHER: 19,
} as const;

export const DTYPE = { f32: 0, bf16: 1, i8: 2, i32: 3, f16: 4 } as const;
export type NativeDType = keyof typeof DTYPE;

export const BYTES: Record<NativeDType, number> = { f32: 4, bf16: 2, i8: 1, i32: 4, f16: 2 };

/** A device matrix as an op argument: pointer, dtype, rows, cols, row stride (elements). */
export interface DeviceMatrix {
  readonly ptr: number;
  readonly dtype: NativeDType;
  readonly rows: number;
  readonly cols: number;
  readonly ld: number;
}

export class Program {
  private data = new Float64Array(4096);
  private size = 0;
  private ops = 0;
  /** Where the last op starts and its code (-1: none since the last reset), for fusions that replace it. */
  private lastStart = -1;
  private lastCode = -1;

  get length(): number {
    return this.size;
  }

  get opCount(): number {
    return this.ops;
  }

  /** The encoded ops (a view, valid until the next reset or emit). */
  view(): Float64Array {
    return this.data.subarray(0, this.size);
  }

  reset(): void {
    this.size = 0;
    this.ops = 0;
    this.lastStart = this.lastCode = -1;
  }

  /** The code of the op emitted last (-1: none since the last reset or drop). */
  get lastOp(): number {
    return this.lastCode;
  }

  /** Removes the op emitted last (a fusion replaces it). */
  dropLastOp(): void {
    if (this.lastStart < 0) throw new Error('Program.dropLastOp: no op to drop');
    this.size = this.lastStart;
    this.ops--;
    this.lastStart = this.lastCode = -1;
  }

  /** Appends one op; tensor arguments are spread into their five numbers. */
  emit(op: number, ...args: (number | DeviceMatrix)[]): void {
    this.lastStart = this.size;
    this.lastCode = op;
    let argc = 0;
    for (const a of args) argc += typeof a === 'number' ? 1 : 5;
    this.reserve(2 + argc);
    const d = this.data;
    let at = this.size;
    d[at++] = op;
    d[at++] = argc;
    for (const a of args) {
      if (typeof a === 'number') {
        d[at++] = a;
      } else {
        d[at++] = a.ptr;
        d[at++] = DTYPE[a.dtype];
        d[at++] = a.rows;
        d[at++] = a.cols;
        d[at++] = a.ld;
      }
    }
    this.size = at;
    this.ops++;
  }

  private reserve(n: number): void {
    if (this.size + n <= this.data.length) return;
    const bigger = new Float64Array(Math.max(this.data.length * 2, this.size + n));
    bigger.set(this.data.subarray(0, this.size));
    this.data = bigger;
  }
}
