// Mixture of experts: the router's softmax + top-k, and the grouped expert dispatch.
import { type ExpertSet, type Routing, SKIPPED_EXPERT, type SwiGluWeights, type Tensor } from '../backend.js';
import { siluMulInto } from './elementwise.js';
import { linearInto, rawLinear, type RawLinear } from './matmul.js';
import { cpu, CpuTensor, f32 } from './tensor.js';

/** A MoE layer's experts as they are: the CPU kernel walks them one by one. */
export class CpuExpertSet implements ExpertSet {
  readonly numExperts: number;
  readonly hidden: number;
  readonly ffn: number;
  constructor(readonly experts: readonly SwiGluWeights[]) {
    if (experts.length === 0) throw new Error('expert set: no experts');
    const gate = rawLinear(experts[0]!.gate, 'expert set');
    this.numExperts = experts.length;
    this.ffn = gate.outDim;
    this.hidden = gate.inDim;
  }
}

/** Softmax over all experts of each row, then the k largest (ties: lower expert id first). */
export function routerTopK(logits: Tensor, k: number): Routing {
  const ls = cpu(logits, 'routerTopK');
  const numExperts = ls.cols;
  if (!Number.isInteger(k) || k < 1 || k > numExperts) throw new Error(`routerTopK: k=${k} with ${numExperts} experts`);
  const ld = ls.data as Float32Array;
  const rows = ls.rows;
  const experts = new Int32Array(rows * k);
  const weights = new Float32Array(rows * k);
  const probs = new Float64Array(numExperts);
  const taken = new Uint8Array(numExperts);
  for (let r = 0; r < rows; r++) {
    const base = r * numExperts;
    let max = -Infinity;
    for (let e = 0; e < numExperts; e++) max = Math.max(max, ld[base + e]!);
    let sum = 0;
    for (let e = 0; e < numExperts; e++) {
      probs[e] = Math.exp(ld[base + e]! - max);
      sum += probs[e]!;
    }
    taken.fill(0);
    for (let j = 0; j < k; j++) {
      let best = -1;
      for (let e = 0; e < numExperts; e++) {
        if (!taken[e] && (best < 0 || probs[e]! > probs[best]!)) best = e;
      }
      taken[best] = 1;
      experts[r * k + j] = best;
      weights[r * k + j] = probs[best]! / sum;
    }
  }
  return { experts: new CpuTensor(experts, [rows, k]), weights: new CpuTensor(weights, [rows, k]) };
}

interface ExpertLinears {
  gate: RawLinear;
  up: RawLinear;
  down: RawLinear;
}

function expertLinears(expert: SwiGluWeights, index: number): ExpertLinears {
  const op = `moeExperts (expert ${index})`;
  return { gate: rawLinear(expert.gate, op), up: rawLinear(expert.up, op), down: rawLinear(expert.down, op) };
}

/** Each expert runs once, as a batched SwiGLU over the rows routed to it; outputs are scattered back weighted. */
export function moeExperts(x: Tensor, routing: Routing, experts: readonly SwiGluWeights[]): CpuTensor {
  const xs = cpu(x, 'moeExperts');
  const xd = xs.data as Float32Array;
  const ids = cpu(routing.experts, 'moeExperts', 'i32').data as Int32Array;
  const wts = cpu(routing.weights, 'moeExperts').data as Float32Array;
  const rows = xs.rows;
  const hidden = xs.cols;
  const k = ids.length / rows;
  if (!Number.isInteger(k) || wts.length !== ids.length) throw new Error('moeExperts: routing does not match the rows of x');

  // Group (row, weight) pairs by expert: counting sort keeps rows in order within each expert.
  const counts = new Int32Array(experts.length + 1);
  for (const e of ids) {
    if (e === SKIPPED_EXPERT) continue;
    if (e < 0 || e >= experts.length) throw new Error(`moeExperts: expert id ${e} outside 0..${experts.length - 1} (or ${SKIPPED_EXPERT}: skipped)`);
    counts[e + 1]!++;
  }
  for (let e = 0; e < experts.length; e++) counts[e + 1]! += counts[e]!;
  const groupRows = new Int32Array(ids.length);
  const groupWeights = new Float32Array(ids.length);
  const fill = counts.slice(0, experts.length);
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] === SKIPPED_EXPERT) continue;
    const slot = fill[ids[i]!]!++;
    groupRows[slot] = Math.floor(i / k);
    groupWeights[slot] = wts[i]!;
  }

  let maxGroup = 0;
  for (let e = 0; e < experts.length; e++) maxGroup = Math.max(maxGroup, counts[e + 1]! - counts[e]!);
  const out = f32(rows, hidden);
  const od = out.data as Float32Array;
  if (maxGroup === 0) return out;
  const ffn = rawLinear(experts[0]!.gate, 'moeExperts').outDim;
  const xg = new Float32Array(maxGroup * hidden);
  const gate = new Float32Array(maxGroup * ffn);
  const up = new Float32Array(maxGroup * ffn);
  const y = new Float32Array(maxGroup * hidden);

  for (let e = 0; e < experts.length; e++) {
    const start = counts[e]!;
    const n = counts[e + 1]! - start;
    if (n === 0) continue;
    const lin = expertLinears(experts[e]!, e);
    if (lin.gate.inDim !== hidden || lin.gate.outDim !== ffn || lin.up.outDim !== ffn || lin.down.inDim !== ffn || lin.down.outDim !== hidden) {
      throw new Error(`moeExperts: expert ${e} shapes do not match hidden ${hidden} / ffn ${ffn}`);
    }
    for (let i = 0; i < n; i++) {
      const r = groupRows[start + i]!;
      xg.set(xd.subarray(r * hidden, (r + 1) * hidden), i * hidden);
    }
    linearInto(xg, n, lin.gate, gate);
    linearInto(xg, n, lin.up, up);
    siluMulInto(gate, up, gate, n * ffn);
    linearInto(gate, n, lin.down, y);
    for (let i = 0; i < n; i++) {
      const r = groupRows[start + i]!;
      const w = groupWeights[start + i]!;
      for (let c = 0; c < hidden; c++) od[r * hidden + c] = od[r * hidden + c]! + Math.fround(y[i * hidden + c]! * w);
    }
  }
  return out;
}
