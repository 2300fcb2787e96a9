// Cross-backend op conformance: every op of the Backend interface run on seeded random inputs, on a
// candidate backend and on a reference (the CPU backend, the executable specification), and compared.
// Stateful ops (attention, Mamba conv and scan) run three steps (prefill, continued chunk, decode), so
// cache and state updates count and the single-row kernels are covered.
//
// Inputs are drawn in fp32 and rounded to bf16, so a backend that keeps bf16 sees exactly the values
// the fp32 reference sees; differences then come from the candidate's own arithmetic.
// The error of an output is ‖out − ref‖₂ / ‖ref‖₂. Tolerances (per case):
// - outputs a GPU backend stores in bf16: 1e-2. bf16 keeps 8 significant bits (unit roundoff
//   2^-9 ≈ 2e-3); a result rounded once to bf16 is off by up to that, and a case chains up to ~4 such
//   roundings (e.g. conv → scan → gate), so a correct kernel stays below ~5e-3, while every bug the
//   harness is meant to catch (a missing scale, a lost state, a wrong row) is off by O(1);
// - outputs kept in fp32 (router weights, sampling log-probabilities): 1e-4;
// - the ExpertsInt8 quantizer and the sampled token ids: exact (0).
//
// Two shape profiles: `tiny` (CI: small shapes that still cross every tile edge) and `mini` (the real
// Jamba-1.5-Mini shapes, for GPU runs).
import type { Backend, LinearWeight, MambaState, RaggedBatch, SamplingRow, StepInputs, SwiGluWeights, Tensor } from './backend.js';
import { type ExpertRange, localExpertIds } from '../models/sharding.js';
import { normals, rng } from './testing.js';

export interface Shapes {
  hidden: number;
  ffn: number;
  experts: number;
  topK: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  dInner: number;
  dState: number;
  dConv: number;
  dtRank: number;
  vocab: number;
  /**
   * Widths of the expert cases (moeExperts, denseMlp): hidden and ffn there. Tiny's are wider than its
   * hidden and not multiples of 64, so that a prefill kernel's block of 128 output channels has both of its
   * 64-channel halves in use, the second cut short, and K ends inside a k tile.
   */
  expertHidden: number;
  expertFfn: number;
  /** Rows of the linear and MoE cases. */
  rows: number;
  /**
   * Rows of an extra MoE and dense-MLP batch with more than 32 rows per expert (the prefill kernels,
   * several row tiles, split K); 0 skips it where the fp32 reference would take minutes.
   */
  prefillRows: number;
  /**
   * Prompt lengths of the two sequences of the stateful cases, and where step 0 stops (tiny: the first
   * sequence's second step is long enough for a backend's segmented prefill scan, from a carried state).
   */
  lens: [number, number];
  splits: [number, number];
  blockSize: number;
}

export const PROFILES: Record<'tiny' | 'mini', Shapes> = {
  tiny: {
    hidden: 48, ffn: 80, experts: 5, topK: 2, heads: 6, kvHeads: 2, headDim: 8, dInner: 24, dState: 6, dConv: 4, dtRank: 3, vocab: 300,
    expertHidden: 208, expertFfn: 176, rows: 9, prefillRows: 221, lens: [300, 6], splits: [17, 3], blockSize: 4,
  },
  // Real shapes, except 2 experts instead of 16 and few rows: the fp32 reference runs them in JavaScript.
  mini: {
    hidden: 4096, ffn: 14336, experts: 2, topK: 2, heads: 32, kvHeads: 8, headDim: 128, dInner: 8192, dState: 16, dConv: 4, dtRank: 256,
    vocab: 65536, expertHidden: 4096, expertFfn: 14336, rows: 4, prefillRows: 0, lens: [613, 130], splits: [600, 64], blockSize: 16,
  },
};

export interface OpCase {
  name: string;
  /** Largest acceptable relative L2 error of every output. */
  tolerance: number;
  /** Runs the op on `b` and returns its outputs, downloaded. Inputs come from a fixed seed. */
  run(b: Backend, s: Shapes): Promise<Float32Array[]>;
}

export interface OpResult {
  name: string;
  /** Worst relative L2 error over the case's outputs. */
  error: number;
  maxAbsDiff: number;
  tolerance: number;
  ok: boolean;
}

type Random = () => number;

/** Round-to-nearest-even to bf16, kept in fp32. */
export function toBf16(values: Float32Array): Float32Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]!;
    bits[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16;
  }
  return values;
}

function bf16Normals(r: Random, n: number, std = 1, mean = 0): Float32Array {
  return toBf16(normals(r, n, std, mean));
}

function act(b: Backend, r: Random, shape: number[], std = 1, mean = 0): Tensor {
  return b.upload(bf16Normals(r, shape.reduce((x, y) => x * y, 1), std, mean), shape);
}

function raw(values: Float32Array) {
  return { dtype: 'F32' as const, bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

function dense(b: Backend, r: Random, out: number, inDim: number, withBias = false): LinearWeight {
  return {
    kind: 'dense',
    weight: b.uploadMatrix(raw(bf16Normals(r, out * inDim, 1 / Math.sqrt(inDim))), [out, inDim]),
    bias: withBias ? act(b, r, [out], 0.1) : undefined,
  };
}

function int8(b: Backend, r: Random, out: number, inDim: number): LinearWeight {
  const { weight, scale } = b.uploadInt8Matrix(raw(bf16Normals(r, out * inDim, 1 / Math.sqrt(inDim))), [out, inDim]);
  return { kind: 'int8', weight, scale };
}

function stepInputs(batch: RaggedBatch, tokenIds: Int32Array, sampling: SamplingRow[] = [], sampleRows?: Int32Array): StepInputs {
  return { batch, tokenIds, sampling, sampleRows: sampleRows ?? new Int32Array(0) };
}

/** A step over `rows` rows as one sequence starting at 0 (for ops that ignore the layout). */
function flatStep(rows: number, tokenIds = new Int32Array(rows)): StepInputs {
  return stepInputs({ numRows: rows, segments: [{ rowStart: 0, numRows: rows, cachedLen: 0, stateSlot: 0, blockTable: new Int32Array(0) }] }, tokenIds);
}

/** One expert's (or a dense MLP's) SwiGLU weights at the expert cases' widths. */
function expertWeights(make: (b: Backend, r: Random, out: number, inDim: number) => LinearWeight, b: Backend, r: Random, s: Shapes): SwiGluWeights {
  return { gate: make(b, r, s.expertFfn, s.expertHidden), up: make(b, r, s.expertFfn, s.expertHidden), down: make(b, r, s.expertHidden, s.expertFfn) };
}

/**
 * Row counts of the expert cases: decode, a small batch, a decode-sized batch (33-64 rows of a dense
 * MLP take one 64-row tile on Hopper, several 32-row tiles elsewhere), and where affordable two
 * prefill-sized ones: 40 rows per expert on average (the MoE's 64-row tiles on Hopper) and `prefillRows`.
 */
function expertRows(s: Shapes): number[] {
  const decodeBatch = 4 * s.rows + 23;
  const midBatch = Math.ceil((40 * s.experts) / s.topK);
  return s.prefillRows > 0 ? [1, s.rows, decodeBatch, midBatch, s.prefillRows] : [1, s.rows, decodeBatch];
}

/** The steps stateful cases run: a prefill, a chunk that continues it, then one decode row each. */
const STEPS = [0, 1, 2] as const;
type Step = (typeof STEPS)[number];

/** Two sequences; step 0 runs their first `split` tokens, step 1 the rest, step 2 one more. Blocks are scattered. */
function stepBatch(s: Shapes, step: Step): RaggedBatch {
  let row = 0;
  const segments = s.lens.map((len, q) => {
    const from = [0, s.splits[q]!, len][step];
    const to = [s.splits[q]!, len, len + 1][step];
    const blocks = Math.ceil((len + 1) / s.blockSize);
    const blockTable = Int32Array.from({ length: blocks }, (_, i) => (q === 0 ? 2 * (blocks - 1 - i) + 1 : 2 * i));
    const seg = { rowStart: row, numRows: to - from, cachedLen: from, stateSlot: [2, 0][q]!, blockTable };
    row += to - from;
    return seg;
  });
  return { numRows: row, segments };
}

function totalBlocks(s: Shapes): number {
  return 2 * Math.max(...s.lens.map((l) => Math.ceil((l + 1) / s.blockSize)));
}

/** Runs `body` inside a step and always ends it. */
async function inStep(b: Backend, inputs: StepInputs, body: () => Promise<Float32Array[]>): Promise<Float32Array[]> {
  b.beginStep(inputs);
  try {
    return await body();
  } finally {
    b.endStep();
  }
}

/** mambaConv then selectiveScan in each step of `batchOf`, through `state`: both outputs of every step. */
async function convScanSteps(b: Backend, r: Random, s: Shapes, p: ReturnType<typeof mambaParams>, state: MambaState, batchOf: (step: Step) => RaggedBatch): Promise<Float32Array[]> {
  const outs: Float32Array[] = [];
  for (const step of STEPS) {
    const batch = batchOf(step);
    const rows = batch.numRows;
    const xIn = act(b, r, [rows, s.dInner]);
    const dtRaw = act(b, r, [rows, s.dInner], 1, -2);
    const bIn = act(b, r, [rows, s.dState]);
    const cIn = act(b, r, [rows, s.dState]);
    const z = act(b, r, [rows, s.dInner]);
    outs.push(
      ...(await inStep(b, stepInputs(batch, new Int32Array(rows)), async () => {
        const xc = b.mambaConv(xIn, p.convW, p.convB, state, batch);
        const y = b.selectiveScan({ x: xc, dtRaw, negA: p.negA, b: bIn, c: cIn, d: p.d, z }, state, batch);
        return [await b.download(xc), await b.download(y)];
      })),
    );
  }
  return outs;
}

/** pagedAttention in each step of `batchOf`, through a cache of `blocks` blocks: its output every step. */
async function attentionSteps(b: Backend, r: Random, s: Shapes, blocks: number, batchOf: (step: Step) => RaggedBatch): Promise<Float32Array[]> {
  const cache = b.createKvCache(blocks, s.blockSize, s.kvHeads, s.headDim);
  const shape = { numHeads: s.heads, numKvHeads: s.kvHeads, headDim: s.headDim, scale: 1 / Math.sqrt(s.headDim) };
  const outs: Float32Array[] = [];
  for (const step of STEPS) {
    const batch = batchOf(step);
    const rows = batch.numRows;
    const q = act(b, r, [rows, s.heads * s.headDim]);
    const k = act(b, r, [rows, s.kvHeads * s.headDim]);
    const v = act(b, r, [rows, s.kvHeads * s.headDim]);
    outs.push(...(await inStep(b, stepInputs(batch, new Int32Array(rows)), async () => [await b.download(b.pagedAttention(q, k, v, cache, batch, shape))])));
  }
  return outs;
}

/**
 * Sequences of the decode-batch cases: enough that a backend takes its wide-batch decode kernels, and odd,
 * so that a kernel taking sequences in pairs meets a block with one.
 */
const MANY = 13;

/**
 * MANY sequences with prompts of 2 to 3·blockSize + 1 tokens, their state slots and KV blocks scattered
 * (sequence q's block i is block i·MANY + q): step 0 runs the prompts, steps 1 and 2 one row each.
 */
function manyBatch(s: Shapes, step: Step): RaggedBatch {
  let row = 0;
  const segments = Array.from({ length: MANY }, (_, q) => {
    const prompt = 2 + ((q * 7) % (3 * s.blockSize));
    const from = step === 0 ? 0 : prompt + step - 1;
    const numRows = step === 0 ? prompt : 1;
    const blocks = Math.ceil((prompt + 2) / s.blockSize);
    const seg = { rowStart: row, numRows, cachedLen: from, stateSlot: (q * 5 + 3) % (MANY + 1), blockTable: Int32Array.from({ length: blocks }, (_, i) => i * MANY + q) };
    row += numRows;
    return seg;
  });
  return { numRows: row, segments };
}

function manyBlocks(s: Shapes): number {
  return MANY * Math.ceil((3 * s.blockSize + 3) / s.blockSize);
}

/** A Mamba layer's state pool (`slots` slots), conv weights and bias, −exp(A_log) and D, drawn from `r`. */
function mambaParams(b: Backend, r: Random, s: Shapes, slots = 3) {
  const state = b.createMambaState(slots, s.dInner, s.dConv, s.dState);
  const convW = act(b, r, [s.dInner, s.dConv], 0.5);
  const convB = act(b, r, [s.dInner], 0.1);
  const negA = b.upload(Float32Array.from(normals(r, s.dInner * s.dState, 0.5), (v) => -Math.exp(v)), [s.dInner, s.dState]);
  const d = act(b, r, [s.dInner], 0.3, 1);
  return { state, convW, convB, negA, d };
}

/**
 * The mixer's middle as the model runs it (runtime/models/jamba.ts), every intermediate compared: a
 * backend may fuse these ops (step 2 is a step of single-row sequences, as decode is).
 */
async function mixerSteps(b: Backend, s: Shapes, seed: number, batchOf = (step: Step) => stepBatch(s, step), slots = 3): Promise<Float32Array[]> {
  const r = rng(seed);
  const { state, convW, convB, negA, d } = mambaParams(b, r, s, slots);
  const xProj = dense(b, r, s.dtRank + 2 * s.dState, s.dInner);
  const norms = [s.dtRank, s.dState, s.dState].map((n) => act(b, r, [n], 0.2, 1));
  const dtProj: LinearWeight = { ...dense(b, r, s.dInner, s.dtRank), bias: act(b, r, [s.dInner], 0.5, -2) };
  const inProj = dense(b, r, 2 * s.dInner, s.hidden);
  const outs: Float32Array[] = [];
  for (const step of STEPS) {
    const batch = batchOf(step);
    const h = act(b, r, [batch.numRows, s.hidden]);
    outs.push(
      ...(await inStep(b, stepInputs(batch, new Int32Array(batch.numRows)), async () => {
        const [xIn, z] = b.splitColumns(b.linear(h, inProj), [s.dInner, s.dInner]) as [Tensor, Tensor];
        const xc = b.mambaConv(xIn, convW, convB, state, batch);
        const dtbc = b.linear(xc, xProj);
        const parts = b.splitColumns(dtbc, [s.dtRank, s.dState, s.dState]);
        const [dtN, bN, cN] = parts.map((part, i) => b.rmsNorm(part, norms[i]!, 1e-6)) as [Tensor, Tensor, Tensor];
        const dtRaw = b.linear(dtN, dtProj);
        const y = b.selectiveScan({ x: xc, dtRaw, negA, b: bN, c: cN, d, z }, state, batch);
        const got: Float32Array[] = [];
        for (const t of [xc, dtbc, dtN, bN, cN, dtRaw, y]) got.push(await b.download(t)); // one at a time: the first runs the step
        return got;
      })),
    );
  }
  return outs;
}

const BF16_TOL = 1e-2;
const FP32_TOL = 1e-4;

export const OP_CASES: OpCase[] = [
  {
    name: 'linear (dense, bias; decode and prefill row counts; a narrow x_proj-shaped weight)',
    tolerance: BF16_TOL,
    async run(b, s) {
      const r = rng(1);
      const w = dense(b, r, s.ffn + 3, s.hidden, true);
      const outs: Float32Array[] = [];
      for (const rows of [1, 5, s.rows, 4 * s.rows + 3]) {
        outs.push(...(await inStep(b, flatStep(rows), async () => [await b.download(b.linear(act(b, r, [rows, s.hidden]), w))])));
      }
      // A small weight at few rows (Mamba's x_proj): the kernel decode steps use for it may differ.
      const narrow = dense(b, r, s.dtRank + 2 * s.dState, s.dInner, true);
      for (const rows of [1, 2, 7]) {
        outs.push(...(await inStep(b, flatStep(rows), async () => [await b.download(b.linear(act(b, r, [rows, s.dInner]), narrow))])));
      }
      return outs;
    },
  },
  {
    name: 'linear (int8 + per-row scale)',
    tolerance: BF16_TOL,
    async run(b, s) {
      const r = rng(2);
      const w = int8(b, r, s.hidden, s.ffn);
      const outs: Float32Array[] = [];
      for (const rows of [1, s.rows]) {
        outs.push(...(await inStep(b, flatStep(rows), async () => [await b.download(b.linear(act(b, r, [rows, s.ffn]), w))])));
      }
      return outs;
    },
  },
  {
    name: 'uploadInt8Matrix (ExpertsInt8 quantizer, values and scales)',
    tolerance: 0,
    async run(b, s) {
      const r = rng(3);
      const values = bf16Normals(r, s.ffn * s.hidden, 0.02);
      for (let i = 0; i < s.hidden; i++) values[i] = 0; // an all-zero row: scale 0
      // Row 1 has scale exactly 1: halves show the rounding rule (63.5 → 64, 62.5 → 62, -0.5 → -0).
      values.set([127, 63.5, 62.5, -0.5], s.hidden);
      const { weight, scale } = b.uploadInt8Matrix(raw(values), [s.ffn, s.hidden]);
      return [await b.download(weight), await b.download(scale)];
    },
  },
  {
    name: 'embedding, rmsNorm, siluMul, addInPlace, addInPlace + rmsNorm, rmsNorms in a row, splitColumns, gatherSampleRows',
    tolerance: BF16_TOL,
    async run(b, s) {
      const r = rng(4);
      const table = dense(b, r, s.vocab, s.hidden).weight;
      const ids = Int32Array.from({ length: s.rows }, (_, i) => (i * 7919) % s.vocab);
      const inputs = { ...flatStep(s.rows, ids), sampleRows: Int32Array.of(s.rows - 1, 0, 3) };
      return inStep(b, inputs, async () => {
        const x = b.embedding(table);
        const n = b.rmsNorm(x, act(b, r, [s.hidden], 0.2, 1), 1e-6);
        const [g, u] = b.splitColumns(b.linear(n, dense(b, r, 2 * s.ffn, s.hidden)), [s.ffn, s.ffn]) as [Tensor, Tensor];
        const m = b.siluMul(g, u);
        const resid = act(b, r, [s.rows, s.ffn]);
        b.addInPlace(resid, m);
        const gathered = b.gatherSampleRows(resid);
        // A residual add straight into a norm of the sum (a backend may fuse the two).
        const stream = act(b, r, [s.rows, s.hidden], 4);
        b.addInPlace(stream, x);
        const normed = b.rmsNorm(stream, act(b, r, [s.hidden], 0.2, 1), 1e-6);
        // Norms of three column slices in a row (Mamba's dt, B and C; a backend may run them as one op).
        const widths = [s.dtRank, s.dState, s.dState];
        const parts = b.splitColumns(act(b, r, [s.rows, s.dtRank + 2 * s.dState]), widths);
        const weights = widths.map((width) => act(b, r, [width], 0.2, 1));
        const partNorms = parts.map((part, i) => b.rmsNorm(part, weights[i]!, 1e-5));
        const outs: Float32Array[] = [];
        for (const t of [x, n, m, gathered, stream, normed, ...partNorms]) outs.push(await b.download(t));
        return outs;
      });
    },
  },
  {
    name: 'routerTopK',
    tolerance: FP32_TOL,
    async run(b, s) {
      const r = rng(5);
      return inStep(b, flatStep(s.rows), async () => {
        const routing = b.routerTopK(act(b, r, [s.rows, s.experts], 2), s.topK);
        return [await b.download(routing.weights), await b.download(routing.experts)];
      });
    },
  },
  {
    name: 'moeExperts (bf16 and int8 expert sets)',
    tolerance: BF16_TOL,
    async run(b, s) {
      const r = rng(6);
      const outs: Float32Array[] = [];
      for (const make of [dense, int8]) {
        const set = b.createExpertSet(Array.from({ length: s.experts }, () => expertWeights(make, b, r, s)));
        for (const rows of expertRows(s)) {
          const x = act(b, r, [rows, s.expertHidden]);
          const logits = act(b, r, [rows, s.experts], 2);
          outs.push(...(await inStep(b, flatStep(rows), async () => [await b.download(b.moeExperts(x, b.routerTopK(logits, s.topK), set))])));
        }
      }
      return outs;
    },
  },
  {
    name: 'moeExperts, one rank of expert parallelism (int8; the slots of experts held elsewhere skipped)',
    tolerance: BF16_TOL,
    async run(b, s) {
      const r = rng(12);
      const range: ExpertRange = { first: Math.floor(s.experts / 2), count: s.experts - Math.floor(s.experts / 2) };
      const held = Array.from({ length: range.count }, () => expertWeights(int8, b, r, s));
      const set = b.createExpertSet(held);
      const outs: Float32Array[] = [];
      for (const rows of expertRows(s)) {
        const x = act(b, r, [rows, s.expertHidden]);
        // Distinct experts per row out of all s.experts, so rows with none, one or all of their slots held here.
        const ids = Int32Array.from({ length: rows * s.topK }, (_, i) => (Math.floor(i / s.topK) + (i % s.topK)) % s.experts);
        const routing = {
          experts: b.upload(localExpertIds(ids, range), [rows, s.topK]),
          weights: b.upload(Float32Array.from({ length: rows * s.topK }, () => 0.1 + 0.8 * r()), [rows, s.topK]),
        };
        outs.push(...(await inStep(b, flatStep(rows), async () => [await b.download(b.moeExperts(x, routing, set))])));
      }
      return outs;
    },
  },
  {
    name: 'denseMlp (one-expert sets, bf16 and int8)',
    tolerance: BF16_TOL,
    async run(b, s) {
      const r = rng(10);
      const outs: Float32Array[] = [];
      for (const make of [dense, int8]) {
        const mlp = b.createExpertSet([expertWeights(make, b, r, s)]);
        for (const rows of expertRows(s)) {
          const x = act(b, r, [rows, s.expertHidden]);
          outs.push(...(await inStep(b, flatStep(rows), async () => [await b.download(b.denseMlp(x, mlp))])));
        }
      }
      return outs;
    },
  },
  {
    name: 'pagedAttention (GQA, two sequences, prefill + chunk + decode over scattered blocks)',
    tolerance: BF16_TOL,
    run: (b, s) => attentionSteps(b, rng(7), s, totalBlocks(s), (step) => stepBatch(s, step)),
  },
  {
    name: 'pagedAttention (GQA, thirteen sequences: prefill, then two decode steps of thirteen rows)',
    tolerance: BF16_TOL,
    run: (b, s) => attentionSteps(b, rng(13), s, manyBlocks(s), (step) => manyBatch(s, step)),
  },
  {
    // The model's head dim and block size at any profile: a backend's tensor-core paths (and their copies
    // of whole KV blocks) take these; the decode slices end mid-tile and mid-block.
    name: 'pagedAttention at head dim 128, block size 16 (GQA 4, two sequences, prefill + chunk + decode)',
    tolerance: BF16_TOL,
    run: (b, s) => {
      const t = { ...s, heads: 8, kvHeads: 2, headDim: 128, blockSize: 16 };
      return attentionSteps(b, rng(14), t, totalBlocks(t), (step) => stepBatch(t, step));
    },
  },
  {
    name: 'mambaConv + selectiveScan (two sequences, prefill + chunk + decode through the state pool)',
    tolerance: BF16_TOL,
    async run(b, s) {
      const r = rng(8);
      const p = mambaParams(b, r, s);
      return convScanSteps(b, r, s, p, p.state, (step) => stepBatch(s, step));
    },
  },
  {
    // Thirteen sequences in scattered slots: a short prefill each, then two decode steps of thirteen single
    // rows, as a busy server runs them (a backend may take another decode kernel from 8 sequences on).
    name: 'mambaConv + selectiveScan (thirteen sequences: prefill, then two decode steps of thirteen rows)',
    tolerance: BF16_TOL,
    async run(b, s) {
      const r = rng(12);
      const p = mambaParams(b, r, s, MANY + 1);
      return convScanSteps(b, r, s, p, p.state, (step) => manyBatch(s, step));
    },
  },
  {
    name: 'Mamba mixer: in_proj → mambaConv → x_proj → dt/B/C rmsNorms → dt_proj → selectiveScan (prefill + chunk + decode)',
    tolerance: BF16_TOL,
    run: (b, s) => mixerSteps(b, s, 9),
  },
  {
    // The model's d_state with bf16 activations, a long chunk from a carried state and a d_inner that
    // ends mid-block: the inputs a backend's fast scan paths take at any profile.
    name: 'Mamba mixer at d_state 16, d_inner 136 (prefill + 283-row chunk + decode)',
    tolerance: BF16_TOL,
    run: (b, s) => mixerSteps(b, { ...s, dInner: 136, dState: 16, dtRank: 8, lens: [300, 6], splits: [17, 3] }, 10),
  },
  {
    // The same over the decode batch: the model's decode steps, many sequences in scattered slots.
    name: 'Mamba mixer at d_state 16, d_inner 136 (thirteen sequences: prefill, then two decode steps of thirteen rows)',
    tolerance: BF16_TOL,
    run: (b, s) => {
      const t = { ...s, dInner: 136, dState: 16, dtRank: 8 };
      return mixerSteps(b, t, 11, (step) => manyBatch(t, step), MANY + 1);
    },
  },
];

/** The sampler over fp32 logits: token ids must match exactly, log-probabilities to fp32 rounding. */
export const SAMPLE_CASE = {
  name: 'sample (greedy, temperature, top-k, top-p, min-p, logprobs)',
  rows(): SamplingRow[] {
    const base: SamplingRow = { temperature: 0, topP: 1, topK: 0, minP: 0, seed: 7, counter: 0, logprobs: -1 };
    return [
      { ...base, logprobs: 5 },
      { ...base, temperature: 0.7, counter: 3 },
      { ...base, temperature: 1, topK: 40, seed: 11, logprobs: 0 },
      { ...base, temperature: 0.8, topP: 0.9, seed: 12 },
      { ...base, temperature: 1.3, minP: 0.05, seed: 13, logprobs: 20 },
      { ...base, temperature: 0.6, topK: 100, topP: 0.5, minP: 0.01, seed: 14 },
      { ...base, temperature: 1, topK: 1, seed: 15 },
      ...[16, 17, 18, 19].map((seed) => ({ ...base, temperature: 1.5, topP: 0.5, seed })),
    ];
  },
  async run(b: Backend, s: Shapes, draw: number): Promise<{ tokenIds: Int32Array; logprobs: Float32Array; topIds: Int32Array; topLogprobs: Float32Array }> {
    const r = rng(9 + draw);
    const rows = this.rows().map((row) => ({ ...row, seed: row.seed + draw * 1000 }));
    const logits = b.upload(normals(r, rows.length * s.vocab, 3), [rows.length, s.vocab]);
    b.beginStep(stepInputs(flatStep(rows.length).batch, new Int32Array(rows.length), rows, Int32Array.from(rows.keys())));
    return b.sample(logits);
  },
};

function l2Error(out: Float32Array, ref: Float32Array): { error: number; maxAbs: number } {
  if (out.length !== ref.length) return { error: Infinity, maxAbs: Infinity };
  let num = 0;
  let den = 0;
  let maxAbs = 0;
  for (let i = 0; i < out.length; i++) {
    const d = out[i]! - ref[i]!;
    if (Number.isNaN(d)) return { error: Infinity, maxAbs: Infinity };
    num += d * d;
    den += ref[i]! * ref[i]!;
    maxAbs = Math.max(maxAbs, Math.abs(d));
  }
  return { error: den === 0 ? (num === 0 ? 0 : Infinity) : Math.sqrt(num / den), maxAbs };
}

function compareOutputs(name: string, tolerance: number, got: Float32Array[], want: Float32Array[]): OpResult {
  let error = got.length === want.length ? 0 : Infinity;
  let maxAbsDiff = error;
  got.forEach((g, i) => {
    const e = want[i] ? l2Error(g, want[i]!) : { error: Infinity, maxAbs: Infinity };
    error = Math.max(error, e.error);
    maxAbsDiff = Math.max(maxAbsDiff, e.maxAbs);
  });
  return { name, error, maxAbsDiff, tolerance, ok: error <= tolerance };
}

/** Runs every case on both backends; `ok` when the candidate stays within the case's tolerance. */
export async function compareBackends(candidate: Backend, reference: Backend, shapes: Shapes = PROFILES.tiny, cases: OpCase[] = OP_CASES): Promise<OpResult[]> {
  const results: OpResult[] = [];
  for (const c of cases) {
    try {
      results.push(compareOutputs(c.name, c.tolerance, await c.run(candidate, shapes), await c.run(reference, shapes)));
    } catch (error) {
      // One broken op must not hide the others' results.
      results.push({ name: `${c.name}: ${(error as Error).message}`, error: Infinity, maxAbsDiff: Infinity, tolerance: c.tolerance, ok: false });
    }
  }
  for (let draw = 0; draw < 3; draw++) {
    let got;
    let want;
    try {
      got = await SAMPLE_CASE.run(candidate, shapes, draw);
      want = await SAMPLE_CASE.run(reference, shapes, draw);
    } catch (error) {
      results.push({ name: `${SAMPLE_CASE.name} #${draw}: ${(error as Error).message}`, error: Infinity, maxAbsDiff: Infinity, tolerance: 0, ok: false });
      continue;
    }
    const ids = compareOutputs(`${SAMPLE_CASE.name} #${draw}: token ids`, 0, [Float32Array.from(got.tokenIds), Float32Array.from(got.topIds)], [
      Float32Array.from(want.tokenIds),
      Float32Array.from(want.topIds),
    ]);
    const finite = (a: Float32Array) => Float32Array.from(a, (v) => (Number.isNaN(v) ? 0 : v));
    const lps = compareOutputs(`${SAMPLE_CASE.name} #${draw}: logprobs`, FP32_TOL, [finite(got.logprobs), finite(got.topLogprobs)], [
      finite(want.logprobs),
      finite(want.topLogprobs),
    ]);
    results.push(ids, lps);
  }
  return results;
}
