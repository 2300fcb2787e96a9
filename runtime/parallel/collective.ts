// Collectives between CPU ranks running in worker threads, over shared memory: each rank has a slot
// in one SharedArrayBuffer; a sense-reversing barrier (Atomics.wait/notify) orders the writes and the
// reads. All-reduce sums the slots in rank order on every rank, so replicated tensors stay bit-identical
// across ranks (what keeps the ranks' sampling and state in step).
export interface CollectiveBuffers {
  /** size × slotFloats fp32 slots. */
  readonly data: SharedArrayBuffer;
  /** [0] arrivals, [1] generation. */
  readonly barrier: SharedArrayBuffer;
  readonly size: number;
  readonly slotFloats: number;
}

export function createCollectiveBuffers(size: number, slotFloats: number): CollectiveBuffers {
  return { data: new SharedArrayBuffer(size * slotFloats * 4), barrier: new SharedArrayBuffer(8), size, slotFloats };
}

export class SharedMemoryCollective {
  private readonly slots: Float32Array[];
  private readonly sync: Int32Array;

  constructor(
    private readonly buffers: CollectiveBuffers,
    readonly rank: number,
  ) {
    this.slots = Array.from({ length: buffers.size }, (_, r) => new Float32Array(buffers.data, r * buffers.slotFloats * 4, buffers.slotFloats));
    this.sync = new Int32Array(buffers.barrier);
  }

  get size(): number {
    return this.buffers.size;
  }

  /** Every rank waits here until all have arrived; a rank that never comes fails the others after `timeoutMs`. */
  barrier(timeoutMs = 120_000): void {
    const generation = Atomics.load(this.sync, 1);
    if (Atomics.add(this.sync, 0, 1) === this.buffers.size - 1) {
      Atomics.store(this.sync, 0, 0);
      Atomics.add(this.sync, 1, 1);
      Atomics.notify(this.sync, 1);
      return;
    }
    const deadline = Date.now() + timeoutMs;
    while (Atomics.load(this.sync, 1) === generation) {
      if (Date.now() > deadline) throw new Error(`rank ${this.rank}: the other ranks did not reach the barrier within ${timeoutMs / 1000} s`);
      Atomics.wait(this.sync, 1, generation, 1000);
    }
  }

  private check(n: number, what: string): void {
    if (n > this.buffers.slotFloats) throw new Error(`${what}: ${n} values exceed the ${this.buffers.slotFloats}-value exchange buffer`);
  }

  /** data ← Σ over ranks of their data, in rank order. */
  allReduce(data: Float32Array): void {
    this.check(data.length, 'allReduce');
    this.slots[this.rank]!.set(data);
    this.barrier();
    data.set(this.slots[0]!.subarray(0, data.length));
    for (let r = 1; r < this.buffers.size; r++) {
      const slot = this.slots[r]!;
      for (let i = 0; i < data.length; i++) data[i]! += slot[i]!;
    }
    this.barrier(); // the slots are free again only when every rank has read them
  }

  /** Each rank's [rows, cols] side by side → [rows, size·cols]. */
  allGatherColumns(data: Float32Array, rows: number, cols: number): Float32Array {
    this.check(data.length, 'allGatherColumns');
    this.slots[this.rank]!.set(data);
    this.barrier();
    const size = this.buffers.size;
    const out = new Float32Array(rows * cols * size);
    for (let r = 0; r < size; r++) {
      const slot = this.slots[r]!;
      for (let row = 0; row < rows; row++) out.set(slot.subarray(row * cols, (row + 1) * cols), row * cols * size + r * cols);
    }
    this.barrier();
    return out;
  }
}
