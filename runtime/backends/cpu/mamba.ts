// Mamba-1 mixer kernels: the depthwise causal conv with its rolling state, and the selective scan
// with its SSM state. Both walk each sequence of the ragged batch from its own state slot.
import type { MambaState, RaggedBatch, SelectiveScanInputs, Tensor } from '../backend.js';
import { checkBatch } from './batch.js';
import { silu } from './elementwise.js';
import { cpu, CpuMambaState, CpuTensor, f32, f32Data } from './tensor.js';

function cpuState(state: MambaState, op: string): CpuMambaState {
  if (!(state instanceof CpuMambaState)) throw new Error(`${op}: state does not belong to the cpu backend`);
  return state;
}

function checkSlot(state: CpuMambaState, slot: number, op: string): void {
  if (!Number.isInteger(slot) || slot < 0 || slot >= state.numSlots) {
    throw new Error(`${op}: state slot ${slot} outside 0..${state.numSlots - 1}`);
  }
}

/** torch.nn.functional.softplus (beta 1, threshold 20). */
export function softplus(v: number): number {
  return v > 20 ? v : Math.log1p(Math.exp(v));
}

export function mambaConv(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | undefined,
  mambaState: MambaState,
  batch: RaggedBatch,
): CpuTensor {
  const state = cpuState(mambaState, 'mambaConv');
  const { dInner, dConv } = state;
  const xs = cpu(x, 'mambaConv');
  const xd = xs.data as Float32Array;
  const w = f32Data(weight, 'mambaConv'); // [dInner, dConv]
  const b = bias ? f32Data(bias, 'mambaConv') : undefined;
  if (xs.cols !== dInner || w.length !== dInner * dConv || (b && b.length !== dInner)) {
    throw new Error(`mambaConv: x [${xs.shape.join(', ')}], weight of ${w.length} do not match dInner ${dInner} × dConv ${dConv}`);
  }
  checkBatch(batch, xs.rows, 'mambaConv');
  const out = f32(xs.rows, dInner);
  const od = out.data as Float32Array;
  const past = dConv - 1;
  // window[0..past-1]: the previous inputs, oldest first; window[past]: the current input.
  const window = new Float64Array(dConv);
  for (const seg of batch.segments) {
    checkSlot(state, seg.stateSlot, 'mambaConv');
    const stateBase = seg.stateSlot * dInner * past;
    for (let c = 0; c < dInner; c++) {
      const sc = stateBase + c * past;
      for (let k = 0; k < past; k++) window[k] = state.conv[sc + k]!;
      const wc = c * dConv;
      const bc = b ? b[c]! : 0;
      for (let t = 0; t < seg.numRows; t++) {
        const idx = (seg.rowStart + t) * dInner + c;
        window[past] = xd[idx]!;
        let acc = bc;
        for (let k = 0; k < dConv; k++) acc += w[wc + k]! * window[k]!;
        od[idx] = silu(Math.fround(acc));
        for (let k = 0; k < past; k++) window[k] = window[k + 1]!;
      }
      for (let k = 0; k < past; k++) state.conv[sc + k] = window[k]!;
    }
  }
  return out;
}

export function selectiveScan(inputs: SelectiveScanInputs, mambaState: MambaState, batch: RaggedBatch): CpuTensor {
  const state = cpuState(mambaState, 'selectiveScan');
  const { dInner, dState } = state;
  const xs = cpu(inputs.x, 'selectiveScan');
  const x = xs.data as Float32Array;
  const dt = f32Data(inputs.dtRaw, 'selectiveScan');
  const negA = f32Data(inputs.negA, 'selectiveScan');
  const bm = f32Data(inputs.b, 'selectiveScan');
  const cm = f32Data(inputs.c, 'selectiveScan');
  const d = f32Data(inputs.d, 'selectiveScan');
  const z = f32Data(inputs.z, 'selectiveScan');
  const rows = xs.rows;
  if (
    xs.cols !== dInner ||
    dt.length !== rows * dInner ||
    z.length !== rows * dInner ||
    negA.length !== dInner * dState ||
    bm.length !== rows * dState ||
    cm.length !== rows * dState ||
    d.length !== dInner
  ) {
    throw new Error(`selectiveScan: input sizes do not match ${rows} rows, dInner ${dInner}, dState ${dState}`);
  }
  checkBatch(batch, rows, 'selectiveScan');
  const out = f32(rows, dInner);
  const od = out.data as Float32Array;
  const h = new Float64Array(dState);
  for (const seg of batch.segments) {
    checkSlot(state, seg.stateSlot, 'selectiveScan');
    const slotBase = seg.stateSlot * dInner * dState;
    // Channel-major: one channel's state stays in `h` while the sequence's tokens stream through.
    for (let ch = 0; ch < dInner; ch++) {
      const hb = slotBase + ch * dState;
      const ab = ch * dState;
      for (let s = 0; s < dState; s++) h[s] = state.ssm[hb + s]!;
      for (let t = 0; t < seg.numRows; t++) {
        const row = seg.rowStart + t;
        const idx = row * dInner + ch;
        const delta = softplus(dt[idx]!);
        const u = x[idx]!;
        const du = delta * u;
        const rb = row * dState;
        let y = 0;
        for (let s = 0; s < dState; s++) {
          const hs = Math.exp(delta * negA[ab + s]!) * h[s]! + du * bm[rb + s]!;
          h[s] = hs;
          y += hs * cm[rb + s]!;
        }
        od[idx] = (y + d[ch]! * u) * silu(z[idx]!);
      }
      for (let s = 0; s < dState; s++) state.ssm[hb + s] = h[s]!;
    }
  }
  return out;
}
