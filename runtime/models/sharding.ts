// Tensor parallelism (Megatron-style) for Jamba: which slice of each checkpoint tensor a rank holds,
// and the rank's local sizes. The model (jamba.ts) marks where partial results are summed across ranks
// (after every row-parallel layer) and where the vocabulary slices are gathered.
//
//   embedding, lm_head   vocab-parallel: rows [v0, v1) of the vocabulary
//   q/k/v_proj           column-parallel over heads (rows of the weight); o_proj row-parallel (columns)
//   in_proj              column-parallel over d_inner, for both halves (x rows and z rows)
//   conv1d, dt_proj, A, D  per channel: rows of d_inner
//   x_proj               row-parallel (columns of d_inner) → all-reduce of (dt, B, C)
//   out_proj             row-parallel → all-reduce; its bias added on rank 0 only
//   experts, dense MLP   gate/up column-parallel over ffn, down row-parallel → all-reduce
//   router, norms        replicated
import { type RandomWindow, SKIPPED_EXPERT } from '../backends/backend.js';
import type { JambaConfig } from './config.js';

export interface Shard {
  readonly rank: number;
  readonly size: number;
}

export const SINGLE: Shard = { rank: 0, size: 1 };

const range = (rank: number, per: number, offset = 0): [number, number] => [offset + rank * per, offset + (rank + 1) * per];

/** How a rank reads a tensor: whole, some row ranges (concatenated), or one column range. */
export type Slice =
  | { readonly kind: 'full' }
  | { readonly kind: 'rows'; readonly ranges: readonly (readonly [number, number])[] }
  | { readonly kind: 'cols'; readonly start: number; readonly end: number }
  /** Present on rank 0 only (a row-parallel layer's bias); zeros elsewhere. */
  | { readonly kind: 'rank0' };

export interface LocalSizes {
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly dInner: number;
  readonly ffn: number;
  readonly vocabStart: number;
  readonly vocabEnd: number;
}

/** Refuses a size that does not divide what is split, with what to change. */
export function checkShardable(cfg: JambaConfig, size: number): void {
  if (!Number.isInteger(size) || size < 1) throw new Error(`tensor parallel size must be a positive integer, got ${size}`);
  if (size === 1) return;
  const parts: [string, number][] = [
    ['attention heads', cfg.numAttentionHeads],
    ['Mamba inner channels (mamba_expand × hidden_size)', cfg.mambaDInner],
    ['feed-forward size (intermediate_size)', cfg.intermediateSize],
    ['vocabulary', cfg.vocabSize],
  ];
  // Key/value heads split too, or, when there are fewer than ranks, each is copied to the ranks of its group.
  const kvOk = (t: number): boolean => cfg.numKeyValueHeads % t === 0 || t % cfg.numKeyValueHeads === 0;
  const fits = (t: number): boolean => parts.every(([, n]) => n % t === 0) && kvOk(t);
  if (!fits(size)) {
    const bad = parts.filter(([, n]) => n % size !== 0).map(([what, n]) => `${what} (${n})`);
    if (!kvOk(size)) bad.push(`key/value heads (${cfg.numKeyValueHeads}: neither divides the other)`);
    const good = [1, 2, 4, 8, 16].filter(fits);
    throw new Error(`tensor parallel size ${size} does not divide the model's ${bad.join(', ')}; sizes that work: ${good.join(', ')}`);
  }
}

/** The KV heads a rank holds: its share, or the one head its query heads use (copied across ranks). */
function kvHeadRange(cfg: JambaConfig, shard: Shard): [number, number] {
  const kv = cfg.numKeyValueHeads;
  if (kv % shard.size === 0) return range(shard.rank, kv / shard.size);
  const head = Math.floor(shard.rank / (shard.size / kv));
  return [head, head + 1];
}

export function localSizes(cfg: JambaConfig, shard: Shard): LocalSizes {
  const s = shard.size;
  const vocab = cfg.vocabSize / s;
  const [kv0, kv1] = kvHeadRange(cfg, shard);
  return {
    numHeads: cfg.numAttentionHeads / s,
    numKvHeads: kv1 - kv0,
    dInner: cfg.mambaDInner / s,
    ffn: cfg.intermediateSize / s,
    vocabStart: shard.rank * vocab,
    vocabEnd: (shard.rank + 1) * vocab,
  };
}

/** The rank's config: the local sizes where the model reads them; everything else as in the checkpoint. */
export function localConfig(cfg: JambaConfig, shard: Shard): JambaConfig {
  if (shard.size === 1) return cfg;
  const l = localSizes(cfg, shard);
  return { ...cfg, numAttentionHeads: l.numHeads, numKeyValueHeads: l.numKvHeads, mambaDInner: l.dInner, intermediateSize: l.ffn, vocabSize: l.vocabEnd - l.vocabStart };
}

/** The slice of checkpoint tensor `name` that `shard` holds. */
export function tensorSlice(name: string, cfg: JambaConfig, shard: Shard): Slice {
  if (shard.size === 1) return { kind: 'full' };
  const r = shard.rank;
  const l = localSizes(cfg, shard);
  const rows = (...ranges: [number, number][]): Slice => ({ kind: 'rows', ranges });
  const cols = ([start, end]: [number, number]): Slice => ({ kind: 'cols', start, end });
  if (name === 'model.embed_tokens.weight' || name === 'lm_head.weight') return rows([l.vocabStart, l.vocabEnd]);
  const m = /^model\.layers\.\d+\.(.+)$/.exec(name);
  const part = m?.[1] ?? '';
  const hd = cfg.headDim;
  switch (part) {
    case 'self_attn.q_proj.weight':
      return rows(range(r, l.numHeads * hd));
    case 'self_attn.k_proj.weight':
    case 'self_attn.v_proj.weight': {
      const [kv0, kv1] = kvHeadRange(cfg, shard);
      return rows([kv0 * hd, kv1 * hd]);
    }
    case 'self_attn.o_proj.weight':
      return cols(range(r, l.numHeads * hd));
    case 'mamba.in_proj.weight':
    case 'mamba.in_proj.bias':
      return rows(range(r, l.dInner), range(r, l.dInner, cfg.mambaDInner));
    case 'mamba.conv1d.weight':
    case 'mamba.conv1d.bias':
    case 'mamba.dt_proj.weight':
    case 'mamba.dt_proj.bias':
    case 'mamba.A_log':
    case 'mamba.D':
      return rows(range(r, l.dInner));
    case 'mamba.x_proj.weight':
    case 'mamba.out_proj.weight':
      return cols(range(r, l.dInner));
    case 'mamba.out_proj.bias':
      return { kind: 'rank0' };
  }
  if (/^feed_forward\.(experts\.\d+\.)?(gate|up)_proj\.weight$/.test(part)) return rows(range(r, l.ffn));
  if (/^feed_forward\.(experts\.\d+\.)?down_proj\.weight$/.test(part)) return cols(range(r, l.ffn));
  return { kind: 'full' };
}

/** The local shape of a tensor of full shape `shape` under `slice`. */
export function slicedShape(shape: readonly number[], slice: Slice): number[] {
  switch (slice.kind) {
    case 'full':
    case 'rank0':
      return [...shape];
    case 'rows':
      return [slice.ranges.reduce((a, [s, e]) => a + e - s, 0), ...shape.slice(1)];
    case 'cols':
      return [shape[0]!, slice.end - slice.start, ...shape.slice(2)];
  }
}

/** Byte ranges of a tensor (relative to its first byte) that a rank reads, and what they make. */
export interface Selection {
  readonly parts: readonly (readonly [start: number, length: number])[];
  readonly shape: number[];
  /** Nothing to read: the rank holds zeros (a row-parallel bias off rank 0). */
  readonly zeros: boolean;
}

/**
 * What a rank reads of a row-major tensor of `shape` under `slice`: row slices are contiguous runs;
 * a column slice is one run per row. Only the shard's own bytes are read.
 */
export function selection(shape: readonly number[], bytesPerElement: number, slice: Slice, rank: number): Selection {
  const rowBytes = (shape.slice(1).reduce((a, b) => a * b, 1) || 1) * bytesPerElement;
  const total = shape.reduce((a, b) => a * b, 1) * bytesPerElement;
  const local = slicedShape(shape, slice);
  switch (slice.kind) {
    case 'full':
      return { parts: [[0, total]], shape: local, zeros: false };
    case 'rank0':
      return rank === 0 ? { parts: [[0, total]], shape: local, zeros: false } : { parts: [], shape: local, zeros: true };
    case 'rows':
      return { parts: slice.ranges.map(([s, e]) => [s * rowBytes, (e - s) * rowBytes] as const), shape: local, zeros: false };
    case 'cols': {
      const inner = (shape.slice(2).reduce((a, b) => a * b, 1) || 1) * bytesPerElement;
      const width = (slice.end - slice.start) * inner;
      return { parts: Array.from({ length: shape[0]! }, (_, row) => [row * rowBytes + slice.start * inner, width] as const), shape: local, zeros: false };
    }
  }
}

/**
 * Where a rank's slice of a tensor of full `shape` sits in the full tensor viewed as a matrix [shape[0],
 * the rest], for making shards of one random tensor (Backend.randomMatrix); undefined for the whole tensor.
 */
export function randomWindowOf(shape: readonly number[], slice: Slice): RandomWindow | undefined {
  const fullCols = shape.slice(1).reduce((a, b) => a * b, 1);
  switch (slice.kind) {
    case 'full':
    case 'rank0':
      return undefined;
    case 'rows':
      return { fullCols, rowRanges: slice.ranges, colStart: 0 };
    case 'cols':
      return { fullCols, rowRanges: [[0, shape[0]!]], colStart: slice.start * (fullCols / shape[1]!) };
  }
}

/**
 * Expert parallelism, the layout measured against the ffn split above (`bench --ops moe-parallel`): each
 * rank holds whole experts, a contiguous run of them, and every rank sees every token (the all-reduce
 * after the layer sums the ranks' outputs, as with the ffn split).
 */
export interface ExpertRange {
  readonly first: number;
  readonly count: number;
}

export function expertRange(numExperts: number, shard: Shard): ExpertRange {
  if (numExperts % shard.size !== 0) throw new Error(`expert parallelism: ${numExperts} experts do not divide over ${shard.size} ranks`);
  const count = numExperts / shard.size;
  return { first: shard.rank * count, count };
}

/** A rank's view of the router's choices: its own experts renumbered from 0, the others' SKIPPED_EXPERT. */
export function localExpertIds(ids: Int32Array, range: ExpertRange): Int32Array {
  return ids.map((e) => (e >= range.first && e < range.first + range.count ? e - range.first : SKIPPED_EXPERT));
}
