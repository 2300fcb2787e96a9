// Causal GQA attention over a paged KV cache. No positional embedding (Jamba has none).
//
// For each sequence: write the new tokens' K and V at positions cachedLen.. through its block
// table, then for each new token at position p and each query head, softmax(q·kⱼ·scale) over the
// keys j ≤ p of its KV head (query head h reads KV head h / (numHeads/numKvHeads)), and the
// weighted sum of the values.
import type { AttentionShape, KvCache, RaggedBatch, SequenceSegment, Tensor } from '../backend.js';
import { checkBatch } from './batch.js';
import { cpu, CpuKvCache, CpuTensor, f32, f32Data } from './tensor.js';

function cacheOffset(cache: CpuKvCache, seg: SequenceSegment, pos: number): number {
  const block = seg.blockTable[Math.floor(pos / cache.blockSize)];
  if (block === undefined || block < 0 || block >= cache.numBlocks) {
    throw new Error(`pagedAttention: position ${pos} maps to block ${block}, pool has ${cache.numBlocks}`);
  }
  return (block * cache.blockSize + (pos % cache.blockSize)) * cache.numKvHeads * cache.headDim;
}

function writeKv(k: Float32Array, v: Float32Array, cache: CpuKvCache, seg: SequenceSegment): void {
  const width = cache.numKvHeads * cache.headDim;
  for (let i = 0; i < seg.numRows; i++) {
    const dst = cacheOffset(cache, seg, seg.cachedLen + i);
    const src = (seg.rowStart + i) * width;
    cache.k.set(k.subarray(src, src + width), dst);
    cache.v.set(v.subarray(src, src + width), dst);
  }
}

export function pagedAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  kvCache: KvCache,
  batch: RaggedBatch,
  shape: AttentionShape,
): CpuTensor {
  if (!(kvCache instanceof CpuKvCache)) throw new Error('pagedAttention: cache does not belong to the cpu backend');
  const cache = kvCache;
  const { numHeads, numKvHeads, headDim, scale } = shape;
  if (numKvHeads !== cache.numKvHeads || headDim !== cache.headDim || numHeads % numKvHeads !== 0) {
    throw new Error(
      `pagedAttention: ${numHeads} heads / ${numKvHeads} kv heads × ${headDim} vs cache ${cache.numKvHeads} × ${cache.headDim}`,
    );
  }
  const qs = cpu(q, 'pagedAttention');
  const qd = qs.data as Float32Array;
  const kd = f32Data(k, 'pagedAttention');
  const vd = f32Data(v, 'pagedAttention');
  const rows = qs.rows;
  checkBatch(batch, rows, 'pagedAttention');
  if (qs.cols !== numHeads * headDim || kd.length !== rows * numKvHeads * headDim || vd.length !== kd.length) {
    throw new Error(`pagedAttention: q/k/v sizes do not match ${rows} rows of ${numHeads}/${numKvHeads} heads × ${headDim}`);
  }
  const group = numHeads / numKvHeads;
  const out = f32(rows, numHeads * headDim);
  const od = out.data as Float32Array;

  let maxLen = 0;
  for (const seg of batch.segments) maxLen = Math.max(maxLen, seg.cachedLen + seg.numRows);
  const scores = new Float64Array(maxLen);
  const keyOffsets = new Int32Array(maxLen);
  const acc = new Float64Array(headDim);

  const kc = cache.k;
  const vc = cache.v;
  for (const seg of batch.segments) {
    writeKv(kd, vd, cache, seg);
    const seqLen = seg.cachedLen + seg.numRows;
    for (let j = 0; j < seqLen; j++) keyOffsets[j] = cacheOffset(cache, seg, j);
    for (let i = 0; i < seg.numRows; i++) {
      const row = seg.rowStart + i;
      const keys = seg.cachedLen + i + 1; // causal: positions 0..p
      for (let h = 0; h < numHeads; h++) {
        const qo = (row * numHeads + h) * headDim;
        const kvHead = Math.floor(h / group) * headDim;
        let max = -Infinity;
        for (let j = 0; j < keys; j++) {
          const ko = keyOffsets[j]! + kvHead;
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += qd[qo + d]! * kc[ko + d]!;
          const s = dot * scale;
          scores[j] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let j = 0; j < keys; j++) {
          const e = Math.exp(scores[j]! - max);
          scores[j] = e;
          sum += e;
        }
        // Accumulate the weighted values in float64, then normalise once.
        acc.fill(0);
        for (let j = 0; j < keys; j++) {
          const p = scores[j]!;
          const vo = keyOffsets[j]! + kvHead;
          for (let d = 0; d < headDim; d++) acc[d] = acc[d]! + p * vc[vo + d]!;
        }
        for (let d = 0; d < headDim; d++) od[qo + d] = acc[d]! / sum;
      }
    }
  }
  return out;
}
