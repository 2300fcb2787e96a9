// Books for the paged KV cache: which blocks of the runner's pool each sequence holds. Blocks are
// taken on demand as a sequence grows and returned at once when it finishes or is cancelled.
// Only attention layers have KV; all of them share one block table per sequence.
import type { Sequence } from './sequence.js';

export class BlockManager {
  private readonly freeBlocks: number[];

  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
  ) {
    if (!(numBlocks > 0 && blockSize > 0)) throw new Error(`block manager: bad geometry ${numBlocks} blocks × ${blockSize} tokens`);
    // Popped from the end, so hand out low ids first.
    this.freeBlocks = Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i);
  }

  get numFreeBlocks(): number {
    return this.freeBlocks.length;
  }

  get numUsedBlocks(): number {
    return this.numBlocks - this.freeBlocks.length;
  }

  blocksFor(numTokens: number): number {
    return Math.ceil(numTokens / this.blockSize);
  }

  /** Extra blocks `seq` needs to hold `numTokens` positions in total. */
  blocksNeeded(seq: Sequence, numTokens: number): number {
    return Math.max(0, this.blocksFor(numTokens) - seq.blockTable.length);
  }

  /** Grows `seq`'s table to cover `numTokens` positions; false (and nothing taken) when the pool is short. */
  allocate(seq: Sequence, numTokens: number): boolean {
    const needed = this.blocksNeeded(seq, numTokens);
    if (needed > this.freeBlocks.length) return false;
    for (let i = 0; i < needed; i++) seq.blockTable.push(this.freeBlocks.pop()!);
    return true;
  }

  free(seq: Sequence): void {
    for (let i = seq.blockTable.length - 1; i >= 0; i--) this.freeBlocks.push(seq.blockTable[i]!);
    seq.blockTable = [];
  }

  get usageRatio(): number {
    return this.numUsedBlocks / this.numBlocks;
  }
}
