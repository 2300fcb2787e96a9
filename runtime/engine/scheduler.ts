// Continuous batching: decides, at each step boundary, which sequences run and how many of their
// tokens. Under a per-step token budget it schedules decodes first (one token each), then the
// next chunk of prompts already being prefilled, then admits waiting requests while a Mamba state
// slot, KV blocks and budget remain. When KV blocks run out it preempts the most recently admitted
// sequence by recomputation (its state is dropped and its tokens so far are prefilled again later);
// a Mamba state cannot be rolled back, so recomputation is the only kind of preemption possible.
// Against thrashing (as vLLM): a step that preempted admits nobody, and admission leaves a watermark
// of free blocks for the running sequences to grow into.
// Books only: no tensors are touched here.
import type { BlockManager } from './block-manager.js';
import type { Sequence } from './sequence.js';
import type { StateSlotManager } from './state-slots.js';

export interface SchedulerConfig {
  /** Most sequences running at once. */
  maxNumSeqs: number;
  /** Token budget of one step (decode tokens + prefill chunk tokens). */
  maxNumBatchedTokens: number;
  /** Share of the KV pool admission keeps free (default 0.01, as vLLM). */
  admissionWatermark?: number;
}

export interface ScheduledChunk {
  seq: Sequence;
  /** Tokens of `seq` to run this step, starting at seq.numComputedTokens. */
  numTokens: number;
  /** This chunk reaches the end of the sequence's tokens, so a token is sampled after it. */
  samples: boolean;
}

export class Scheduler {
  /** Admission order; the head runs first and is preempted last. */
  readonly waiting: Sequence[] = [];
  readonly running: Sequence[] = [];
  numPreemptions = 0;

  constructor(
    private readonly config: SchedulerConfig,
    private readonly blocks: BlockManager,
    private readonly slots: StateSlotManager,
  ) {}

  /** Something can be scheduled (sequences paused for their readers do not count). */
  get hasWork(): boolean {
    return this.waiting.length > 0 || this.running.some((s) => !s.paused);
  }

  add(seq: Sequence): void {
    this.waiting.push(seq);
  }

  schedule(): ScheduledChunk[] {
    const scheduled: ScheduledChunk[] = [];
    const inBatch = new Set<Sequence>();
    let budget = this.config.maxNumBatchedTokens;
    const preemptionsBefore = this.numPreemptions;

    const scheduleRunning = (seq: Sequence, numTokens: number): boolean => {
      // Make room by preempting from the tail (newest first), never a sequence already in the batch.
      while (!this.blocks.allocate(seq, seq.numComputedTokens + numTokens)) {
        const victim = this.lastPreemptable(inBatch);
        if (victim === undefined) return false;
        this.preempt(victim);
        if (victim === seq) return false;
      }
      scheduled.push({ seq, numTokens, samples: seq.numComputedTokens + numTokens === seq.numTokens });
      inBatch.add(seq);
      budget -= numTokens;
      return true;
    };

    // 1. Decodes: one token each.
    for (const seq of [...this.running]) {
      if (budget <= 0) break;
      if (seq.status !== 'running' || seq.paused || seq.numUncomputedTokens !== 1) continue;
      scheduleRunning(seq, 1);
    }
    // 2. Prompts part-way through prefill: their next chunk.
    for (const seq of [...this.running]) {
      if (budget <= 0) break;
      if (seq.status !== 'running' || seq.numUncomputedTokens <= 1) continue;
      scheduleRunning(seq, Math.min(seq.numUncomputedTokens, budget));
    }
    // 3. Admit waiting requests, oldest first, while capacity lasts (no preemption for admission, and
    //    none at all in a step that had to preempt: the victim would be re-admitted at once).
    if (this.numPreemptions !== preemptionsBefore) return scheduled;
    const watermark = Math.floor((this.config.admissionWatermark ?? 0.01) * this.blocks.numBlocks);
    while (budget > 0 && this.waiting.length > 0 && this.running.length < this.config.maxNumSeqs) {
      const seq = this.waiting[0]!;
      const numTokens = Math.min(seq.numUncomputedTokens, budget);
      // The watermark binds only while others run: a lone request may use the whole pool.
      const reserve = this.running.length > 0 ? watermark : 0;
      if (this.slots.numFree === 0 || this.blocks.blocksNeeded(seq, numTokens) + reserve > this.blocks.numFreeBlocks) break;
      this.waiting.shift();
      seq.stateSlot = this.slots.acquire()!;
      this.blocks.allocate(seq, numTokens);
      seq.status = 'running';
      this.running.push(seq);
      scheduled.push({ seq, numTokens, samples: numTokens === seq.numUncomputedTokens });
      inBatch.add(seq);
      budget -= numTokens;
    }
    return scheduled;
  }

  /** Drops `seq` from the books and returns its KV blocks and state slot at once. */
  finish(seq: Sequence): void {
    this.release(seq);
    const w = this.waiting.indexOf(seq);
    if (w >= 0) this.waiting.splice(w, 1);
    const r = this.running.indexOf(seq);
    if (r >= 0) this.running.splice(r, 1);
    seq.status = 'finished';
  }

  private release(seq: Sequence): void {
    this.blocks.free(seq);
    if (seq.stateSlot >= 0) {
      this.slots.release(seq.stateSlot);
      seq.stateSlot = -1;
    }
  }

  private lastPreemptable(inBatch: Set<Sequence>): Sequence | undefined {
    for (let i = this.running.length - 1; i >= 0; i--) {
      const seq = this.running[i]!;
      if (!inBatch.has(seq)) return seq;
    }
    return undefined;
  }

  private preempt(seq: Sequence): void {
    this.numPreemptions++;
    this.release(seq);
    seq.numComputedTokens = 0;
    seq.status = 'waiting';
    this.running.splice(this.running.indexOf(seq), 1);
    this.waiting.unshift(seq);
  }
}
