// `jamba-runtime bench --ops moe,attention,mamba`: single ops of the CUDA backend at Jamba-1.5-Mini
// shapes, timed on the device (CUDA events around the op's kernels, median of several runs, with a
// 256 MiB write between runs so the L2 is cold), against the peers' figures on an H200 (the CUDA issue's;
// `tools/gpu/run.sh peers` runs the peers on the card at hand, for ratios on one card):
//   moe:        both expert GEMMs + SiLU, ExpertsInt8, routing precomputed (vLLM fused_moe int8_w8a16)
//   mlp:        the dense MLP of the layers without experts, int8 (the same kernels, one expert)
//   moe-parallel: an MoE layer split over N ranks by ffn against whole experts per rank (one rank's op timed here)
//   attention:  causal prefill over one sequence; decode batch 1 over 256K and batch 64 over 4K (cuDNN SDPA)
//   mamba:      selective scan prefill (mamba-ssm CUDA scan) and the decode state update (its Triton kernel)
import { type ExpertSet, type RaggedBatch, SKIPPED_EXPERT, type StepInputs, type Tensor } from '../backends/backend.js';
import type { CudaBackend } from '../backends/cuda/index.js';
import { expertRange, localExpertIds } from '../models/sharding.js';
import { Xoshiro128 } from '../sampling/prng.js';
import { median } from './model-bench.js';

export interface OpBenchRow {
  op: string;
  shape: string;
  ms: number;
  /** The peer's time on an H200 (the CUDA issue's figures; `tools/gpu/run.sh peers` times the peers on the card at hand). */
  peerMs?: number;
  /** Bytes the op must move at least, for the bandwidth figure. */
  bytes?: number;
  flops?: number;
}

/** An MoE layer's sizes (a preset's). */
export interface MoeShape {
  name: string;
  hidden: number;
  ffn: number;
  experts: number;
}

const MINI = { hidden: 4096, ffn: 14336, experts: 16, heads: 32, kvHeads: 8, headDim: 128, dInner: 8192, dState: 16, dConv: 4 };
const RUNS = 7;

function oneSequence(rows: number, cachedLen: number, blocks: number): RaggedBatch {
  return { numRows: rows, segments: [{ rowStart: 0, numRows: rows, cachedLen, stateSlot: 0, blockTable: Int32Array.from({ length: blocks }, (_, i) => i) }] };
}

function decodeBatch(batch: number, cachedLen: number, blocksPerSeq: number): RaggedBatch {
  return {
    numRows: batch,
    segments: Array.from({ length: batch }, (_, i) => ({
      rowStart: i,
      numRows: 1,
      cachedLen,
      stateSlot: i,
      blockTable: Int32Array.from({ length: blocksPerSeq }, (_, j) => i * blocksPerSeq + j),
    })),
  };
}

function inputs(batch: RaggedBatch): StepInputs {
  return { batch, tokenIds: new Int32Array(batch.numRows), sampleRows: new Int32Array(0), sampling: [] };
}

/**
 * The top-2 expert ids of `tokens` tokens in the MoE benchmark: two distinct experts per token, drawn from a
 * generator seeded by the count alone, so a count's routing does not depend on the counts run before it.
 * tools/gpu/peer_moe.py draws the same ids for vLLM's kernel (tools/gpu/peer-moe-routing.test.ts).
 */
export function benchRouting(tokens: number, experts: number): Int32Array {
  const rng = new Xoshiro128(3 + tokens);
  const ids = new Int32Array(tokens * 2);
  for (let t = 0; t < tokens; t++) {
    ids[2 * t] = rng.nextUint32() % experts;
    ids[2 * t + 1] = (ids[2 * t]! + 1 + (rng.nextUint32() % (experts - 1))) % experts;
  }
  return ids;
}

export class OpBench {
  private readonly flushBuffer: Tensor;

  constructor(
    private readonly b: CudaBackend,
    private readonly log: (line: string) => void,
  ) {
    this.flushBuffer = b.randomMatrix([64 * 1024, 2048], 1, 99); // 256 MiB
  }

  /**
   * Median device ms of `op`, after cooling the L2. The flush runs first in the same step and the clock
   * starts behind it: the op's kernels are queued while the device is still flushing, so the figure is
   * the op's device time without host launch gaps, like the peers' CUDA-graph replays.
   */
  private async time(batch: RaggedBatch, op: () => void): Promise<number> {
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      this.b.beginStep(inputs(batch));
      this.b.addInPlace(this.flushBuffer, this.flushBuffer);
      this.b.startTimer();
      op();
      const ms = await this.b.flush();
      this.b.endStep();
      if (i > 0) times.push(ms);
    }
    return median(times);
  }

  /** Random int8 SwiGLU experts, Mini's shapes unless given (ExpertsInt8 tiles with per-channel scales). */
  private int8Experts(count: number, hidden = MINI.hidden, ffn = MINI.ffn) {
    const b = this.b;
    return b.createExpertSet(
      Array.from({ length: count }, (_, e) => {
        const make = (shape: [number, number], j: number) => ({ kind: 'int8' as const, ...b.randomInt8Matrix(shape, 0.02, 1000 + e * 3 + j) });
        return { gate: make([ffn, hidden], 0), up: make([ffn, hidden], 1), down: make([hidden, ffn], 2) };
      }),
    );
  }

  async moe(tokenCounts: number[]): Promise<OpBenchRow[]> {
    const b = this.b;
    const { hidden, experts } = MINI;
    const set = this.int8Experts(experts);
    const peers: Record<number, number> = { 1: 0.128, 8: 0.451, 64: 0.747, 256: 1.29, 1024: 2.17, 4096: 7.81 };
    const rows: OpBenchRow[] = [];
    for (const n of tokenCounts) {
      const x = b.randomMatrix([n, hidden], 1, n);
      const ids = benchRouting(n, experts);
      const touched = new Set(ids).size;
      const routing = { experts: b.upload(ids, [n, 2]), weights: b.upload(new Float32Array(n * 2).fill(0.5), [n, 2]) };
      const ms = await this.time(oneSequence(n, 0, 0), () => void b.moeExperts(x, routing, set));
      rows.push(this.expertRow('moe int8', `${n} tokens (${touched} experts)`, ms, touched, n * 2, peers[n]));
      this.log(`moe int8 ${n} tokens: ${(ms * 1000).toFixed(0)} µs (vLLM on an H200 ${peers[n] ? (peers[n]! * 1000).toFixed(0) : '-'} µs)`);
    }
    return rows;
  }

  /**
   * The two ways to split an MoE layer over `ranks` GPUs, one rank's op timed on this device: the ffn split
   * (every rank runs all experts, ffn / ranks wide: the same work on every rank) and expert parallelism
   * (each rank runs its experts / ranks whole experts over the tokens routed to them: the step waits
   * for the busiest rank, so every rank is timed and the slowest counts). Both end in the same all-reduce
   * of [tokens, hidden], so the layer's difference is the slowest rank's op time.
   */
  async moeParallel(shape: MoeShape, rankCounts: number[], tokenCounts: number[]): Promise<OpBenchRow[]> {
    const b = this.b;
    const { hidden, ffn, experts } = shape;
    const rows: OpBenchRow[] = [];
    for (const ranks of rankCounts) {
      if (ffn % (16 * ranks) !== 0) throw new Error(`moe-parallel: ffn ${ffn} does not split into ${ranks} slices of a multiple of 16`);
      const ffnSplit = this.int8Experts(experts, hidden, ffn / ranks);
      const whole = this.int8Experts(expertRange(experts, { rank: 0, size: ranks }).count, hidden, ffn);
      for (const n of tokenCounts) {
        const x = b.randomMatrix([n, hidden], 1, n);
        const ids = benchRouting(n, experts);
        const weights = b.upload(new Float32Array(n * 2).fill(0.5), [n, 2]);
        const timeRouting = (local: Int32Array, set: ExpertSet) => {
          const routing = { experts: b.upload(local, [n, 2]), weights }; // uploaded before the clock starts
          return this.time(oneSequence(n, 0, 0), () => void b.moeExperts(x, routing, set));
        };
        const tpMs = await timeRouting(ids, ffnSplit);
        const perRank: { ms: number; touched: number; pairs: number }[] = [];
        for (let rank = 0; rank < ranks; rank++) {
          const local = localExpertIds(ids, expertRange(experts, { rank, size: ranks }));
          const held = local.filter((e) => e !== SKIPPED_EXPERT);
          perRank.push({ ms: await timeRouting(local, whole), touched: new Set(held).size, pairs: held.length });
        }
        const slowest = perRank.reduce((a, c) => (c.ms > a.ms ? c : a));
        const where = `${shape.name}, ${ranks} ranks, ${n} tokens`;
        const bytes = (touched: number, width: number) => touched * 3 * (width * hidden + width * 4);
        rows.push({ op: 'moe ffn split', shape: where, ms: tpMs, bytes: bytes(new Set(ids).size, ffn / ranks), flops: n * 2 * 3 * 2 * (ffn / ranks) * hidden });
        rows.push({ op: 'moe expert parallel (slowest rank)', shape: where, ms: slowest.ms, bytes: bytes(slowest.touched, ffn), flops: slowest.pairs * 3 * 2 * ffn * hidden });
        const mean = perRank.reduce((a, c) => a + c.ms, 0) / ranks;
        this.log(`moe ${where}: ffn split ${(tpMs * 1000).toFixed(1)} µs, experts whole: slowest rank ${(slowest.ms * 1000).toFixed(1)} µs (mean ${(mean * 1000).toFixed(1)}), ${(slowest.ms / tpMs).toFixed(2)}×`);
      }
    }
    return rows;
  }

  /** The dense MLPs of the layers without experts: one int8 SwiGLU over every row (the MoE kernels). */
  async mlp(tokenCounts: number[]): Promise<OpBenchRow[]> {
    const b = this.b;
    const set = this.int8Experts(1);
    const rows: OpBenchRow[] = [];
    for (const n of tokenCounts) {
      const x = b.randomMatrix([n, MINI.hidden], 1, n);
      const ms = await this.time(oneSequence(n, 0, 0), () => void b.denseMlp(x, set));
      const row = this.expertRow('mlp int8', `${n} tokens`, ms, 1, n);
      rows.push(row);
      this.log(`mlp int8 ${n} tokens: ${(ms * 1000).toFixed(1)} µs, ${(row.bytes! / ms / 1e9).toFixed(2)} TB/s, ${(row.flops! / ms / 1e9).toFixed(0)} TFLOP/s`);
    }
    return rows;
  }

  /** Weight bytes of the experts touched and the FLOPs of `pairs` (token, expert) SwiGLUs. */
  private expertRow(op: string, shape: string, ms: number, touched: number, pairs: number, peerMs?: number): OpBenchRow {
    const { hidden, ffn } = MINI;
    return { op, shape, ms, peerMs, bytes: touched * 3 * (ffn * hidden + ffn * 4), flops: pairs * 3 * 2 * ffn * hidden };
  }

  async attention(prefills: number[], decodes: [batch: number, context: number][]): Promise<OpBenchRow[]> {
    const b = this.b;
    const { heads, kvHeads, headDim } = MINI;
    const shape = { numHeads: heads, numKvHeads: kvHeads, headDim, scale: 1 / Math.sqrt(headDim) };
    const rows: OpBenchRow[] = [];
    const peersPrefill: Record<number, number> = { 4096: 0.262, 32768: 14.1, 131072: 252, 262144: 1080 };
    for (const len of prefills) {
      const blocks = Math.ceil(len / 16);
      const cache = b.createKvCache(blocks, 16, kvHeads, headDim);
      const q = b.randomMatrix([len, heads * headDim], 1, 1);
      const k = b.randomMatrix([len, kvHeads * headDim], 1, 2);
      const v = b.randomMatrix([len, kvHeads * headDim], 1, 3);
      const batch = oneSequence(len, 0, blocks);
      const ms = await this.time(batch, () => void b.pagedAttention(q, k, v, cache, batch, shape));
      const flops = 4 * heads * headDim * ((len * (len + 1)) / 2);
      rows.push({ op: 'attention prefill', shape: `${len}`, ms, peerMs: peersPrefill[len], flops });
      this.log(`attention prefill ${len}: ${ms.toFixed(3)} ms (cuDNN on an H200 ${peersPrefill[len] ?? '-'} ms), ${(flops / ms / 1e9).toFixed(0)} TFLOP/s`);
      if (ms > 20000) break;
    }
    const peersDecode: Record<string, number> = { '1x262144': 0.246, '64x4096': 0.247 };
    for (const [batchSize, context] of decodes) {
      const per = Math.ceil((context + 1) / 16);
      const cache = b.createKvCache(batchSize * per, 16, kvHeads, headDim);
      const q = b.randomMatrix([batchSize, heads * headDim], 1, 4);
      const k = b.randomMatrix([batchSize, kvHeads * headDim], 1, 5);
      const v = b.randomMatrix([batchSize, kvHeads * headDim], 1, 6);
      const batch = decodeBatch(batchSize, context, per);
      const ms = await this.time(batch, () => void b.pagedAttention(q, k, v, cache, batch, shape));
      const bytes = batchSize * (context + 1) * kvHeads * headDim * 2 * 2;
      rows.push({ op: 'attention decode', shape: `batch ${batchSize} over ${context}`, ms, peerMs: peersDecode[`${batchSize}x${context}`], bytes });
      this.log(`attention decode batch ${batchSize} over ${context}: ${(ms * 1000).toFixed(0)} µs, ${(bytes / ms / 1e6).toFixed(0)} GB/s`);
    }
    return rows;
  }

  async mamba(prefills: number[], decodeBatches: number[]): Promise<OpBenchRow[]> {
    const b = this.b;
    const { dInner, dState, dConv } = MINI;
    const slots = Math.max(...decodeBatches, 1);
    const state = b.createMambaState(slots, dInner, dConv, dState);
    const negA = b.upload(Float32Array.from({ length: dInner * dState }, (_, i) => -((i % dState) + 1)), [dInner, dState]);
    const d = b.upload(new Float32Array(dInner).fill(1), [dInner]);
    const convW = b.upload(new Float32Array(dInner * dConv).fill(0.25), [dInner, dConv]);
    const rows: OpBenchRow[] = [];
    const peersScan: Record<number, number> = { 4096: 0.619, 32768: 5.95, 131072: 24.3 };
    const peersUpdate: Record<number, number> = { 1: 0.0041, 8: 0.0048, 64: 0.0196, 256: 0.079 };
    const run = async (batch: RaggedBatch, label: string, peer?: number): Promise<void> => {
      const n = batch.numRows;
      const x = b.randomMatrix([n, dInner], 1, 7);
      const dt = b.randomMatrix([n, dInner], 1, 8);
      const bm = b.randomMatrix([n, dState], 1, 9);
      const cm = b.randomMatrix([n, dState], 1, 10);
      const z = b.randomMatrix([n, dInner], 1, 11);
      const ms = await this.time(batch, () => void b.selectiveScan({ x, dtRaw: dt, negA, b: bm, c: cm, d, z }, state, batch));
      const bytes = n * dInner * 2 * 4 + batch.segments.length * dInner * dState * 4 * 2;
      rows.push({ op: 'mamba scan', shape: label, ms, peerMs: peer, bytes });
      this.log(`mamba scan ${label}: ${(ms * 1000).toFixed(1)} µs (peer on an H200 ${peer !== undefined ? (peer * 1000).toFixed(1) : '-'} µs)`);
      const convMs = await this.time(batch, () => void b.mambaConv(x, convW, undefined, state, batch));
      rows.push({ op: 'mamba conv', shape: label, ms: convMs, bytes: 2 * n * dInner * 2 });
    };
    for (const len of prefills) await run(oneSequence(len, 0, 0), `prefill ${len}`, peersScan[len]);
    for (const batch of decodeBatches) await run(decodeBatch(batch, 100, 0), `decode batch ${batch}`, peersUpdate[batch]);
    return rows;
  }
}
