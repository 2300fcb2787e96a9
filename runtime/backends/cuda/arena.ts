// Activation memory: one device region handed out as a stack. A step starts empty; each scope
// (a decoder layer) returns what it took when it ends. The same op sequence therefore gets the same
// addresses every time, which is what lets a decode step be replayed as a CUDA graph.
const ALIGN = 256;

export class Arena {
  private top = 0;
  private readonly marks: number[] = [];
  /** Largest `top` seen since the last `resetPeak` (the bound check of models/geometry.ts). */
  peak = 0;

  constructor(
    readonly base: number,
    readonly size: number,
  ) {}

  alloc(bytes: number, what: string): number {
    const start = this.top;
    const end = start + Math.ceil(Math.max(bytes, 1) / ALIGN) * ALIGN;
    if (end > this.size) {
      throw new Error(
        `cuda: activation arena exhausted by ${what} (${bytes} bytes; ${this.top} of ${this.size} in use): ` +
          'the step is larger than the arena was sized for (lower --max-num-batched-tokens or --max-num-seqs)',
      );
    }
    this.top = end;
    this.peak = Math.max(this.peak, end);
    return this.base + start;
  }

  reset(): void {
    this.top = 0;
    this.marks.length = 0;
  }

  push(): void {
    this.marks.push(this.top);
  }

  pop(): void {
    const mark = this.marks.pop();
    if (mark === undefined) throw new Error('cuda: endScope without beginScope');
    this.top = mark;
  }
}
