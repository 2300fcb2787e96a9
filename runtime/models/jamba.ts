// Jamba (AI21): a hybrid of attention and Mamba-1 layers, each followed by an MoE or a dense SwiGLU
// MLP. Every decoder layer has the same skeleton:
//     x += mixer(input_layernorm(x));  x += feed_forward(pre_ff_layernorm(x))
// Written against the Backend op interface only; one `step` runs all sequences of a step as one
// ragged batch through every layer. Shapes: T = tokens in the step, H = hidden, Di = Mamba inner.
import type {
  AttentionShape, Backend, ExpertSet, KvCache, LinearWeight, MambaState, RaggedBatch, SampleResult, SamplingRow, SequenceSegment, SwiGluWeights,
  StepInputs, Tensor,
} from '../backends/backend.js';
import type { CacheGeometry, ModelRunner, StepSequence } from '../engine/model-runner.js';
import { type JambaConfig, layerFeedForward, layerMixer } from './config.js';
import { localConfig, localSizes } from './sharding.js';
import type { WeightStore } from './weight-store.js';

interface AttentionMixer {
  kind: 'attention';
  q: LinearWeight; // [heads·headDim, H]
  k: LinearWeight; // [kvHeads·headDim, H]
  v: LinearWeight; // [kvHeads·headDim, H]
  o: LinearWeight; // [H, heads·headDim]
  shape: AttentionShape;
  cache: KvCache;
}

interface MambaMixer {
  kind: 'mamba';
  inProj: LinearWeight; // [2·Di, H] → (x, z)
  convWeight: Tensor; // [Di, dConv]
  convBias?: Tensor; // [Di]
  xProj: LinearWeight; // [dtRank + 2·dState, Di] → (dt, B, C)
  dtNorm: Tensor; // [dtRank]
  bNorm: Tensor; // [dState]
  cNorm: Tensor; // [dState]
  dtProj: LinearWeight; // [Di, dtRank] with bias [Di]
  negA: Tensor; // [Di, dState] = -exp(A_log)
  d: Tensor; // [Di]
  outProj: LinearWeight; // [H, Di]
  state: MambaState;
}

interface MoeBlock {
  kind: 'moe';
  router: LinearWeight; // [numExperts, H]
  experts: ExpertSet;
}

interface DenseMlp {
  kind: 'mlp';
  /** A one-expert set: the backend runs it with its MoE kernels (gate and up fused, no routing). */
  mlp: ExpertSet;
}

interface DecoderLayer {
  inputNorm: Tensor; // [H]
  mixer: AttentionMixer | MambaMixer;
  preFfNorm: Tensor; // [H]
  feedForward: MoeBlock | DenseMlp;
}

function swiGlu(w: WeightStore, prefix: string): SwiGluWeights {
  return { gate: w.linear(`${prefix}gate_proj`), up: w.linear(`${prefix}up_proj`), down: w.linear(`${prefix}down_proj`) };
}

function buildLayer(cfg: JambaConfig, w: WeightStore, backend: Backend, geometry: CacheGeometry, i: number): DecoderLayer {
  const p = `model.layers.${i}.`;
  let mixer: AttentionMixer | MambaMixer;
  if (layerMixer(cfg, i) === 'attention') {
    mixer = {
      kind: 'attention',
      q: w.linear(`${p}self_attn.q_proj`),
      k: w.linear(`${p}self_attn.k_proj`),
      v: w.linear(`${p}self_attn.v_proj`),
      o: w.linear(`${p}self_attn.o_proj`),
      shape: {
        numHeads: cfg.numAttentionHeads,
        numKvHeads: cfg.numKeyValueHeads,
        headDim: cfg.headDim,
        scale: 1 / Math.sqrt(cfg.headDim),
      },
      cache: backend.createKvCache(geometry.numBlocks, geometry.blockSize, cfg.numKeyValueHeads, cfg.headDim),
    };
  } else {
    mixer = {
      kind: 'mamba',
      inProj: w.linear(`${p}mamba.in_proj`, cfg.mambaProjBias),
      convWeight: w.tensor(`${p}mamba.conv1d.weight`),
      convBias: cfg.mambaConvBias ? w.tensor(`${p}mamba.conv1d.bias`) : undefined,
      xProj: w.linear(`${p}mamba.x_proj`),
      dtNorm: w.tensor(`${p}mamba.dt_layernorm.weight`),
      bNorm: w.tensor(`${p}mamba.b_layernorm.weight`),
      cNorm: w.tensor(`${p}mamba.c_layernorm.weight`),
      dtProj: w.linear(`${p}mamba.dt_proj`, true),
      negA: w.tensor(`${p}mamba.A_log`),
      d: w.tensor(`${p}mamba.D`),
      outProj: w.linear(`${p}mamba.out_proj`, cfg.mambaProjBias),
      state: backend.createMambaState(geometry.numStateSlots, cfg.mambaDInner, cfg.mambaDConv, cfg.mambaDState),
    };
  }
  const feedForward: MoeBlock | DenseMlp =
    layerFeedForward(cfg, i) === 'moe'
      ? {
          kind: 'moe',
          router: w.linear(`${p}feed_forward.router`),
          experts: backend.createExpertSet(Array.from({ length: cfg.numExperts }, (_, j) => swiGlu(w, `${p}feed_forward.experts.${j}.`))),
        }
      : { kind: 'mlp', mlp: backend.createExpertSet([swiGlu(w, `${p}feed_forward.`)]) };
  return { inputNorm: w.tensor(`${p}input_layernorm.weight`), mixer, preFfNorm: w.tensor(`${p}pre_ff_layernorm.weight`), feedForward };
}

const NO_SAMPLES: SampleResult = {
  tokenIds: new Int32Array(0),
  logprobs: new Float32Array(0),
  topN: 0,
  topIds: new Int32Array(0),
  topLogprobs: new Float32Array(0),
};

/** Largest top-N of log-probabilities a step returns (OpenAI's chat top_logprobs allows 20). */
export const MAX_TOP_LOGPROBS = 20;

function checkSampling(r: SamplingRow, where: string): void {
  const bad = (what: string): never => {
    throw new Error(`${where}: ${what}`);
  };
  if (!(r.temperature >= 0) || !Number.isFinite(r.temperature)) bad(`temperature ${r.temperature}`);
  if (!(r.topP > 0 && r.topP <= 1)) bad(`top_p ${r.topP}`);
  if (!Number.isInteger(r.topK) || r.topK < 0) bad(`top_k ${r.topK}`);
  if (!(r.minP >= 0 && r.minP <= 1)) bad(`min_p ${r.minP}`);
  if (!Number.isInteger(r.seed) || r.seed < 0 || r.seed > 0xffffffff) bad(`seed ${r.seed}`);
  if (!Number.isInteger(r.counter) || r.counter < 0) bad(`counter ${r.counter}`);
  if (!Number.isInteger(r.logprobs) || r.logprobs < -1 || r.logprobs > MAX_TOP_LOGPROBS) bad(`logprobs ${r.logprobs}`);
}

export class JambaModel implements ModelRunner {
  readonly vocabSize: number;
  private readonly layers: DecoderLayer[];
  private readonly embedTokens: Tensor; // [vocab, H]
  private readonly finalNorm: Tensor; // [H]
  private readonly lmHead: LinearWeight; // [vocab, H] (the embedding when tied)
  private running = false;
  /** State slots of the step in flight: resetting one of them would corrupt that step. */
  private activeSlots = new Set<number>();

  /** This rank's share of the model (the whole model at tensor parallel size 1): see sharding.ts. */
  private readonly local: JambaConfig;
  private readonly parallel: boolean;
  private readonly vocabStart: number;

  constructor(
    readonly config: JambaConfig,
    private readonly backend: Backend,
    readonly weights: WeightStore,
    readonly geometry: CacheGeometry,
  ) {
    this.vocabSize = config.vocabSize;
    this.parallel = backend.shard.size > 1;
    this.local = localConfig(config, backend.shard);
    this.vocabStart = localSizes(config, backend.shard).vocabStart;
    this.embedTokens = weights.tensor('model.embed_tokens.weight');
    this.finalNorm = weights.tensor('model.final_layernorm.weight');
    this.lmHead = config.tieWordEmbeddings ? { kind: 'dense', weight: this.embedTokens } : weights.linear('lm_head');
    this.layers = Array.from({ length: config.numHiddenLayers }, (_, i) => buildLayer(this.local, weights, backend, geometry, i));
  }

  /** Sums a row-parallel layer's partial result over the ranks (nothing when the model is whole). */
  private reduced(t: Tensor): Tensor {
    if (this.parallel) this.backend.allReduce(t);
    return t;
  }

  // --- blocks ----------------------------------------------------------------------------------

  private attention(m: AttentionMixer, x: Tensor, batch: RaggedBatch): Tensor {
    const b = this.backend;
    const q = b.linear(x, m.q); // [T, heads·headDim]
    const k = b.linear(x, m.k); // [T, kvHeads·headDim]
    const v = b.linear(x, m.v); // [T, kvHeads·headDim]
    const attn = b.pagedAttention(q, k, v, m.cache, batch, m.shape); // [T, heads·headDim]
    return this.reduced(b.linear(attn, m.o)); // [T, H]
  }

  private mamba(m: MambaMixer, x: Tensor, batch: RaggedBatch): Tensor {
    const b = this.backend;
    const c = this.local; // Di is this rank's share of the channels
    const [xIn, z] = b.splitColumns(b.linear(x, m.inProj), [c.mambaDInner, c.mambaDInner]) as [Tensor, Tensor]; // [T, Di] each
    const xc = b.mambaConv(xIn, m.convWeight, m.convBias, m.state, batch); // [T, Di], SiLU applied
    const dtbc = this.reduced(b.linear(xc, m.xProj)); // [T, dtRank + 2·dState], summed over the channel shards
    const [dt, bRaw, cRaw] = b.splitColumns(dtbc, [c.mambaDtRank, c.mambaDState, c.mambaDState]) as [Tensor, Tensor, Tensor];
    const eps = c.rmsNormEps;
    // The three norms side by side (a backend may run them as one op), then dt's projection.
    const [dtNormed, bNormed, cNormed] = [b.rmsNorm(dt, m.dtNorm, eps), b.rmsNorm(bRaw, m.bNorm, eps), b.rmsNorm(cRaw, m.cNorm, eps)];
    const dtRaw = b.linear(dtNormed, m.dtProj); // [T, Di], softplus inside the scan
    const y = b.selectiveScan(
      { x: xc, dtRaw, negA: m.negA, b: bNormed, c: cNormed, d: m.d, z },
      m.state,
      batch,
    ); // [T, Di], gated by silu(z)
    return this.reduced(b.linear(y, m.outProj)); // [T, H]
  }


  private moe(m: MoeBlock, x: Tensor): Tensor {
    const b = this.backend;
    const routing = b.routerTopK(b.linear(x, m.router, 'f32'), this.config.numExpertsPerTok); // [T, k]
    return this.reduced(b.moeExperts(x, routing, m.experts)); // [T, H], each rank's experts hold an ffn slice
  }

  /** One decoder layer; its activations are scoped to it (only the residual stream x outlives it). */
  private decoderLayer(layer: DecoderLayer, x: Tensor, batch: RaggedBatch): void {
    const b = this.backend;
    const eps = this.config.rmsNormEps;
    b.beginScope();
    const h = b.rmsNorm(x, layer.inputNorm, eps);
    b.addInPlace(x, layer.mixer.kind === 'attention' ? this.attention(layer.mixer, h, batch) : this.mamba(layer.mixer, h, batch));
    b.endScope();
    b.beginScope();
    const f = b.rmsNorm(x, layer.preFfNorm, eps);
    const ff = layer.feedForward;
    b.addInPlace(x, ff.kind === 'moe' ? this.moe(ff, f) : this.reduced(b.denseMlp(f, ff.mlp))); // down(silu(gate(f)) · up(f))
    b.endScope();
  }

  // --- ModelRunner -----------------------------------------------------------------------------

  async step(seqs: StepSequence[]): Promise<SampleResult> {
    if (this.running) throw new Error('JambaModel.step: a step is already running (steps must not overlap)');
    const inputs = this.layout(seqs);
    const b = this.backend;
    if (inputs.batch.numRows === 0) return NO_SAMPLES;
    this.running = true;
    this.activeSlots = new Set(inputs.batch.segments.map((s) => s.stateSlot));
    let ended = false;
    b.beginStep(inputs);
    try {
      // A step shape the backend has captured (a decode batch size on the GPU) runs without recording.
      const replayed = await b.replay?.();
      if (replayed) {
        ended = true;
        return replayed;
      }
      const x = this.reduced(b.embedding(this.embedTokens, this.vocabStart)); // [T, H]: each rank holds a vocabulary slice
      for (const layer of this.layers) {
        this.decoderLayer(layer, x, inputs.batch);
        // On the CPU, let the event loop breathe between layers (health probes, new requests) during
        // long prefills. A GPU backend only records here and runs the step at its end.
        if (b.computesOnCallingThread) await new Promise<void>((resolve) => setImmediate(resolve));
      }
      ended = true;
      if (inputs.sampleRows.length === 0) {
        await b.completeStep(); // a prefill chunk: its KV and state updates must run
        return NO_SAMPLES;
      }
      const last = b.rmsNorm(b.gatherSampleRows(x), this.finalNorm, this.config.rmsNormEps); // [S, H]
      const logits = b.linear(last, this.lmHead, 'f32'); // [S, vocab / ranks] fp32
      return await b.sample(this.parallel ? b.allGatherColumns(logits) : logits); // [S, vocab] → S tokens
    } finally {
      if (!ended) b.endStep();
      this.activeSlots.clear();
      this.running = false;
    }
  }

  resetStateSlot(slot: number): void {
    if (this.activeSlots.has(slot)) throw new Error(`resetStateSlot: slot ${slot} is in the step now running`);
    for (const layer of this.layers) {
      if (layer.mixer.kind === 'mamba') this.backend.resetMambaSlot(layer.mixer.state, slot);
    }
  }

  dispose(): void {
    this.backend.dispose();
  }

  /** Checks the step's sequences and lays their tokens out as one ragged batch. */
  private layout(seqs: StepSequence[]): StepInputs {
    const { blockSize, numBlocks, numStateSlots } = this.geometry;
    const segments: SequenceSegment[] = [];
    const slots = new Set<number>();
    const sampleRows: number[] = [];
    const sampling: SamplingRow[] = [];
    let rows = 0;
    seqs.forEach((s, i) => {
      const where = `step: sequence ${i}`;
      if (s.tokens.length === 0) throw new Error(`${where}: no tokens`);
      if (!Number.isInteger(s.stateSlot) || s.stateSlot < 0 || s.stateSlot >= numStateSlots) {
        throw new Error(`${where}: state slot ${s.stateSlot} outside 0..${numStateSlots - 1}`);
      }
      if (slots.has(s.stateSlot)) throw new Error(`${where}: state slot ${s.stateSlot} used twice in one step`);
      slots.add(s.stateSlot);
      if (!Number.isInteger(s.cachedLen) || s.cachedLen < 0) throw new Error(`${where}: cachedLen ${s.cachedLen}`);
      const needBlocks = Math.ceil((s.cachedLen + s.tokens.length) / blockSize);
      if (s.blockTable.length < needBlocks) {
        throw new Error(`${where}: ${s.blockTable.length} KV blocks cover fewer than ${s.cachedLen + s.tokens.length} positions`);
      }
      for (let j = 0; j < needBlocks; j++) {
        const block = s.blockTable[j]!;
        if (block < 0 || block >= numBlocks) throw new Error(`${where}: KV block ${block} outside 0..${numBlocks - 1}`);
      }
      for (const id of s.tokens) {
        if (id < 0 || id >= this.vocabSize) throw new Error(`${where}: token id ${id} outside the vocabulary 0..${this.vocabSize - 1}`);
      }
      segments.push({ rowStart: rows, numRows: s.tokens.length, cachedLen: s.cachedLen, stateSlot: s.stateSlot, blockTable: s.blockTable });
      rows += s.tokens.length;
      if (s.sample) {
        checkSampling(s.sample, `${where}: sampling`);
        sampleRows.push(rows - 1);
        sampling.push(s.sample);
      }
    });
    const tokenIds = new Int32Array(rows);
    segments.forEach((seg, i) => tokenIds.set(seqs[i]!.tokens, seg.rowStart));
    return { batch: { numRows: rows, segments }, tokenIds, sampleRows: Int32Array.from(sampleRows), sampling };
  }
}
