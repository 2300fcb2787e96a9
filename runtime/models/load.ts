// loadModel: a Hugging Face Jamba checkpoint directory → a ModelRunner on a backend.
//   config → backend → weights (streamed, placed by the backend) → pools sized (on a GPU from the
//   memory the weights left) → the model.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backend } from '../backends/backend.js';
import { createBackend, cudaAvailable } from '../backends/create.js';
import type { LoadedModel, LoadOptions } from '../engine/model-runner.js';
import { openCheckpoint } from '../loader/checkpoint.js';
import { loadWeights, STAGING_BYTES, type SelectTensor } from '../loader/load-weights.js';
import { parseJambaConfig, type JambaConfig } from './config.js';
import { activationBytesBound, cacheGeometry, CPU_DEFAULT_MAX_NUM_SEQS, defaultDeviceMaxNumSeqs, deviceCacheGeometry } from './geometry.js';
import { JambaModel } from './jamba.js';
import { checkShardable, localConfig, randomWindowOf, selection, slicedShape, tensorSlice } from './sharding.js';
import { ignorableTensors, jambaTensorSpecs } from './weights.js';
import { WeightStore } from './weight-store.js';

/** Without --max-model-len the CPU backend sizes its (fp32, host) pool for 4096 tokens; a GPU takes the model's own limit. */
const CPU_DEFAULT_MAX_MODEL_LEN = 4096;
/** Default step budget when the caller gives none (the engine's own default is the runtime's). */
const DEFAULT_MAX_BATCHED_TOKENS = 512;

function defaultMaxModelLen(cfg: JambaConfig, onDevice: boolean): number {
  return onDevice ? cfg.maxPositionEmbeddings : Math.min(CPU_DEFAULT_MAX_MODEL_LEN, cfg.maxPositionEmbeddings);
}

/**
 * Weight memory: `weightBytes` counts a bf16/int8 deployment (bf16 tensors 2 bytes per parameter,
 * int8 tensors 1 byte per parameter + 4 per channel scale) and `weightBytesBf16` the same weights
 * all in bf16. What the backend really holds (the CPU backend keeps non-quantized weights in fp32)
 * is `residentWeightBytes`.
 */
export async function loadModel(dir: string, opts: LoadOptions): Promise<LoadedModel> {
  const size = opts.tensorParallelSize ?? 1;
  if (size > 1) return loadGroup({ kind: 'checkpoint', dir }, await readConfig(dir), opts);
  const backend = await createBackend(opts.backend);
  return loadModelOn(backend, dir, opts);
}

/** Ranks as worker threads, one backend each (runtime/parallel/rank-group.ts). */
async function loadGroup(source: ModelSource, config: JambaConfig, opts: LoadOptions): Promise<LoadedModel> {
  checkShardable(config, opts.tensorParallelSize ?? 1);
  const kind = opts.backend === 'auto' ? ((await cudaAvailable()).ok ? 'cuda' : 'cpu') : opts.backend;
  const { loadRankGroup } = await import('../parallel/rank-group.js');
  return loadRankGroup(source, config, opts, kind);
}

async function readConfig(dir: string): Promise<JambaConfig> {
  const configPath = join(dir, 'config.json');
  const configText = await readFile(configPath, 'utf8').catch((cause: unknown) => {
    throw new Error(`${configPath}: cannot read`, { cause });
  });
  return parseJambaConfig(configText, configPath);
}

/** Where a model's weights come from: a checkpoint directory, or random numbers at a config's shapes. */
export type ModelSource = { kind: 'checkpoint'; dir: string } | { kind: 'random'; configFields: Record<string, unknown> };

export interface PlacedWeights {
  config: JambaConfig;
  store: WeightStore;
  loadStats?: LoadedModel['loadStats'];
}

/** The weights of `source` on the backend: a rank's shard of them when the backend is a rank of a group. */
export async function placeWeights(backend: Backend, source: ModelSource, opts: LoadOptions): Promise<PlacedWeights> {
  if (opts.quantization !== 'none' && opts.quantization !== 'expertsint8') {
    throw new Error(`load options: unknown quantization ${JSON.stringify(opts.quantization)} (supported: none, expertsint8)`);
  }
  const shard = backend.shard;
  const store = new WeightStore(backend, opts.quantization === 'expertsint8');
  if (source.kind === 'random') {
    const config = parseJambaConfig(JSON.stringify(source.configFields), 'preset');
    checkShardable(config, shard.size);
    // Each rank makes its slice of the same random model (a tensor's values depend on their place in it).
    jambaTensorSpecs(config).forEach((spec, i) => {
      const slice = tensorSlice(spec.name, config, shard);
      store.addRandom(spec.name, slicedShape(spec.shape, slice), 0x5eed + i, randomWindowOf(spec.shape, slice));
    });
    return { config, store };
  }
  const config = await readConfig(source.dir);
  checkShardable(config, shard.size);
  const checkpoint = await openCheckpoint(source.dir);
  try {
    // A tensor-parallel rank reads only its shard of each tensor.
    const select: SelectTensor | undefined =
      shard.size > 1 ? (name, shape, bytesPerElement) => selection(shape, bytesPerElement, tensorSlice(name, config, shard), shard.rank) : undefined;
    // Reads land in the backend's staging memory where it has some (page-locked on a GPU); no more of it
    // than the checkpoint holds.
    const staging = backend.createStagingMemory?.(Math.max(1, Math.min(STAGING_BYTES, checkpoint.totalBytes)));
    try {
      const loadStats = await loadWeights(
        checkpoint,
        jambaTensorSpecs(config),
        { ignorable: ignorableTensors(config), onProgress: opts.onProgress, select, staging },
        (name, tensor) => store.add(name, tensor),
      );
      return { config, store, loadStats };
    } finally {
      staging?.dispose();
    }
  } finally {
    await checkpoint.close();
  }
}

/** loadModel onto a backend the caller made (tests run other backends, or instrumented ones, this way). */
export async function loadModelOn(backend: Backend, dir: string, opts: LoadOptions): Promise<LoadedModel> {
  try {
    const { config, store, loadStats } = await placeWeights(backend, { kind: 'checkpoint', dir }, opts);
    return { ...finishModel(config, backend, store, opts), loadStats };
  } catch (err) {
    backend.dispose();
    throw err;
  }
}

/**
 * Pools sized (on a GPU from what the weights left) and the model built over the placed weights. A
 * group's ranks pass the memory of the rank with the least left, so their pools all come out the same.
 */
export function finishModel(config: JambaConfig, backend: Backend, store: WeightStore, opts: ModelLimits, memory = backend.deviceMemory()): LoadedModel {
  const local = localConfig(config, backend.shard); // a rank's pools hold its share of the heads and channels
  const utilization = opts.gpuMemoryUtilization ?? 0.9;
  const maxNumSeqs =
    opts.maxNumSeqs ?? (memory ? defaultDeviceMaxNumSeqs(local, backend.cacheElementBytes, memory, utilization) : CPU_DEFAULT_MAX_NUM_SEQS);
  const limits = {
    maxModelLen: opts.maxModelLen ?? defaultMaxModelLen(config, memory !== undefined),
    maxNumSeqs,
    kvBlockSize: opts.kvBlockSize,
    kvNumBlocks: opts.kvNumBlocks,
  };
  let geometry;
  if (memory) {
    const maxRows = opts.maxNumBatchedTokens ?? DEFAULT_MAX_BATCHED_TOKENS;
    const reserved = backend.reserveActivations({
      activationBytes: activationBytesBound(local, maxRows, maxNumSeqs, backend.activationElementBytes),
      maxRows,
      maxSeqs: maxNumSeqs,
      maxBlocksPerSeq: Math.ceil(limits.maxModelLen / (limits.kvBlockSize ?? 16)),
    });
    geometry = deviceCacheGeometry(local, limits, backend.cacheElementBytes, memory, utilization, reserved);
  } else {
    geometry = cacheGeometry(local, limits, backend.cacheElementBytes);
  }
  const runner = new JambaModel(config, backend, store, geometry);
  return {
    runner,
    backendName: backend.name,
    backend,
    info: {
      vocabSize: config.vocabSize,
      eosTokenIds: config.eosTokenIds,
      bosTokenId: config.bosTokenId,
      padTokenId: config.padTokenId,
    },
    weightBytes: store.bytes.deployed,
    weightBytesBf16: store.bytes.bf16,
    residentWeightBytes: backend.residentBytes().weights,
  };
}

type ModelLimits = Omit<LoadOptions, 'onProgress'>;

/**
 * A model of the given config.json fields with random weights made by the backend (benchmarks at
 * real size: `jamba-runtime bench --preset`). Same placement and pools as a loaded checkpoint.
 */
export async function randomModel(configFields: Record<string, unknown>, opts: ModelLimits): Promise<LoadedModel> {
  const source: ModelSource = { kind: 'random', configFields };
  if ((opts.tensorParallelSize ?? 1) > 1) return loadGroup(source, parseJambaConfig(JSON.stringify(configFields), 'preset'), opts);
  const backend = await createBackend(opts.backend);
  try {
    const { config, store } = await placeWeights(backend, source, opts);
    return finishModel(config, backend, store, opts);
  } catch (err) {
    backend.dispose();
    throw err;
  }
}
