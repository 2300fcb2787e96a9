// ExpertsInt8: MoE expert and dense-MLP weights as int8 with one symmetric fp32 scale per output
// channel (row). All arithmetic in IEEE fp32, exactly as tools/fixtures/expertsint8.py:
//   scale[o] = max_i |W[o,i]| / 127
//   q[o,i]   = clamp(round_half_even(W[o,i] / scale[o]), -127, 127)   (a zero row: scale 0, q 0)
// and the matmul computes scale[o] · Σ_i q[o,i]·x[i] (see backends/cpu/matmul.ts).

/** The weights ExpertsInt8 quantizes; everything else (attention, Mamba, router, embeddings, norms, lm_head) stays. */
const QUANTIZED_WEIGHT = /^model\.layers\.\d+\.feed_forward\.(experts\.\d+\.)?(gate|up|down)_proj\.weight$/;

export function isExpertsInt8Weight(name: string): boolean {
  return QUANTIZED_WEIGHT.test(name);
}

/** Math.round rounds halves up; torch.round (and this) rounds them to the even neighbour. */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export interface Int8Rows {
  q: Int8Array; // [rows, cols]
  scale: Float32Array; // [rows]
}

/**
 * Quantizes a [rows, cols] weight one row at a time: `readRow(r, out)` fills `out` with row r in
 * fp32, so the caller never needs an fp32 copy of the whole tensor.
 */
export function quantizeRows(rows: number, cols: number, readRow: (r: number, out: Float32Array) => void): Int8Rows {
  const q = new Int8Array(rows * cols);
  const scale = new Float32Array(rows);
  const row = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    readRow(r, row);
    let maxAbs = 0;
    for (let i = 0; i < cols; i++) maxAbs = Math.max(maxAbs, Math.abs(row[i]!));
    const s = Math.fround(maxAbs / 127);
    scale[r] = s;
    if (s === 0) continue; // q stays 0
    const base = r * cols;
    for (let i = 0; i < cols; i++) {
      const v = roundHalfEven(Math.fround(row[i]! / s));
      q[base + i] = v > 127 ? 127 : v < -127 ? -127 : v;
    }
  }
  return { q, scale };
}

/** Bytes of a quantized [rows, cols] weight: 1 per element plus an fp32 scale per row. */
export function int8WeightBytes(rows: number, cols: number): number {
  return rows * cols + rows * 4;
}
