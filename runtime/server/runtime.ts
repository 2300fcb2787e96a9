// Assembles a serving process: metrics, the HTTP server (listening at once), then the tokenizer and
// the model loaded in the background with progress in the log and in /metrics, then the engine.
import { basename, resolve } from 'node:path';
import { Engine } from '../engine/engine.js';
import { type FaultSpec, withFaults } from '../engine/fault-injection.js';
import type { BackendChoice, LoadOptions, LoadProgress, LoadedModel, Quantization } from '../engine/model-runner.js';
import { RuntimeMetrics } from '../metrics/metrics.js';
import { PRESETS } from '../models/presets.js';
import { syntheticTokenizer } from '../tokenizer/synthetic.js';
import { TextTokenizer } from '../tokenizer/tokenizer.js';
import { RequestTracing } from '../tracing/request-tracing.js';
import { jsonLogger, type Logger } from './log.js';
import { RuntimeServer } from './server.js';

export type LoadModelFn = (dir: string, opts: LoadOptions) => Promise<LoadedModel>;

export interface RuntimeOptions {
  /** The checkpoint directory (ignored with randomPreset). */
  modelDir: string;
  /**
   * Serve a published shape with random weights made by the backend and a synthetic tokenizer ("t0" …
   * "t{V-1}"), instead of a checkpoint: serving benchmarks at real size (models/presets.ts).
   */
  randomPreset?: string;
  host: string;
  port: number;
  quantization: Quantization;
  backend: BackendChoice;
  tensorParallelSize: number;
  gpuMemoryUtilization: number;
  /** Default: the backend's (see models/load.ts). */
  maxModelLen?: number;
  /** Default: 16 on the CPU, 256 on a GPU (fewer where memory is short: models/geometry.ts). */
  maxNumSeqs?: number;
  /** Default: 512 on the CPU, 8192 on a GPU. */
  maxNumBatchedTokens?: number;
  maxWaiting: number;
  /** Default: the checkpoint directory's name. */
  servedModelName?: string;
  maxBodyBytes: number;
  /** Also export vLLM's metric names (vllm:*). */
  vllmMetrics?: boolean;
  kvBlockSize?: number;
  kvNumBlocks?: number;
  log?: Logger;
  /** A model step running longer than this makes the engine unhealthy (/health 503). */
  stepStallSeconds?: number;
  /** Testing only: make model steps fail or hang (liveness tests). */
  faultInjection?: FaultSpec;
  /** The model loader; the real one unless a caller substitutes another. */
  loadModel?: LoadModelFn;
}

export const RUNTIME_DEFAULTS = {
  host: '127.0.0.1',
  port: 8000,
  quantization: 'none' as Quantization,
  backend: 'auto' as BackendChoice,
  tensorParallelSize: 1,
  gpuMemoryUtilization: 0.9,
  maxModelLen: 4096,
  maxNumBatchedTokens: 512,
  maxNumBatchedTokensGpu: 8192,
  maxWaiting: 256,
  maxBodyBytes: 4 * 1024 * 1024,
  drainTimeoutSeconds: 30,
  stepStallSeconds: 300,
};

export interface Runtime {
  server: RuntimeServer;
  metrics: RuntimeMetrics;
  host: string;
  port: number;
  url: string;
  servedModelName: string;
  /** Settles when the model is loaded (or failed to load). */
  ready: Promise<LoadedModel>;
  /** The engine, once loaded. */
  engine?: Engine;
  /** /ready → 503, finish what runs within the timeout, cancel the rest. True when all finished. */
  drain(timeoutMs: number): Promise<boolean>;
  /** Stops everything and frees the model. */
  close(): Promise<void>;
}

async function syntheticTextTokenizer(preset: string): Promise<TextTokenizer> {
  const { tokenizer, config } = syntheticTokenizer(PRESETS[preset]!['vocab_size'] as number);
  return TextTokenizer.fromJson(tokenizer, config, `the synthetic tokenizer of preset ${preset}`);
}

async function randomPresetModel(preset: string, opts: LoadOptions): Promise<LoadedModel> {
  const { randomModel } = await import('../models/load.js');
  return randomModel(PRESETS[preset]!, opts);
}

async function defaultLoadModel(dir: string, opts: LoadOptions): Promise<LoadedModel> {
  const { loadModel } = await import('../models/index.js');
  return loadModel(dir, opts);
}

export async function startRuntime(options: RuntimeOptions): Promise<Runtime> {
  const log = options.log ?? jsonLogger;
  const preset = options.randomPreset;
  if (preset !== undefined && !PRESETS[preset]) throw new Error(`unknown preset '${preset}' (known: ${Object.keys(PRESETS).join(', ')})`);
  const modelDir = preset !== undefined ? `preset:${preset}` : resolve(options.modelDir);
  const servedModelName = options.servedModelName ?? (preset ?? basename(modelDir));
  const metrics = new RuntimeMetrics(servedModelName, { vllmAliases: options.vllmMetrics });
  const tracing = new RequestTracing(servedModelName);
  const server = new RuntimeServer({ servedModelName, modelDir, maxBodyBytes: options.maxBodyBytes, metrics, tracing, log });
  const address = await server.listen(options.port, options.host);
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  log('info', 'listening', { host: address.address, port: address.port, url, model: servedModelName });

  let loaded: LoadedModel | undefined;
  const runtime: Runtime = {
    server,
    metrics,
    host: address.address,
    port: address.port,
    url,
    servedModelName,
    ready: undefined as unknown as Promise<LoadedModel>,
    drain: (timeoutMs) => server.drain(timeoutMs),
    close: async () => {
      await runtime.engine?.close();
      await server.close();
      loaded?.runner.dispose();
    },
  };

  runtime.ready = (async () => {
    const started = performance.now();
    const onProgress = progressLogger(log, (p) => {
      server.setLoadProgress(p);
      metrics.setLoadProgress(p.ratio);
    });
    const loadOptions = {
      quantization: options.quantization,
      backend: options.backend,
      tensorParallelSize: options.tensorParallelSize,
      gpuMemoryUtilization: options.gpuMemoryUtilization,
      maxModelLen: options.maxModelLen,
      maxNumBatchedTokens: options.maxNumBatchedTokens ?? RUNTIME_DEFAULTS.maxNumBatchedTokensGpu,
      maxNumSeqs: options.maxNumSeqs,
      kvBlockSize: options.kvBlockSize,
      kvNumBlocks: options.kvNumBlocks,
      onProgress,
    };
    const [tokenizer, model] = await Promise.all(
      preset !== undefined
        ? [syntheticTextTokenizer(preset), randomPresetModel(preset, loadOptions)]
        : [TextTokenizer.fromDir(modelDir), (options.loadModel ?? defaultLoadModel)(modelDir, loadOptions)],
    );

    loaded = model;
    const maxModelLen = model.runner.geometry.maxModelLen;
    const onCpu = model.backendName === 'cpu';
    const maxNumBatchedTokens =
      options.maxNumBatchedTokens ?? (onCpu ? RUNTIME_DEFAULTS.maxNumBatchedTokens : RUNTIME_DEFAULTS.maxNumBatchedTokensGpu);
    if (options.faultInjection) log('warn', 'fault injection is on', { ...options.faultInjection });
    const engine = new Engine(
      options.faultInjection ? withFaults(model.runner, options.faultInjection) : model.runner,
      (ids) => tokenizer.decode(ids),
      { eosTokenIds: model.info.eosTokenIds },
      // The state pool was sized for the backend's max-num-seqs (given, or its default).
      { maxNumSeqs: model.runner.geometry.numStateSlots, maxNumBatchedTokens, maxModelLen, maxWaiting: options.maxWaiting, stepStallSeconds: options.stepStallSeconds },
      {
        onPromptTokens: (n) => metrics.onPromptTokens(n),
        onGenerationTokens: (n) => metrics.onGenerationTokens(n),
        onRequestFailed: (stats, error) => {
          metrics.onRequestFailed(stats);
          log('error', 'request failed', { request_id: stats.requestId, error: error.message });
        },
        onInterTokenLatency: (s) => metrics.onInterTokenLatency(s),
        onRequestFinished: (stats) => {
          metrics.onRequestFinished(stats);
          tracing.finished(stats);
          log('info', 'request finished', {
            request_id: stats.requestId,
            finish_reason: stats.finishReason,
            prompt_tokens: stats.numPromptTokens,
            completion_tokens: stats.numOutputTokens,
            ttft_seconds: stats.timeToFirstTokenSeconds !== undefined ? Number(stats.timeToFirstTokenSeconds.toFixed(4)) : null,
            e2e_seconds: Number(stats.e2eSeconds.toFixed(4)),
          });
        },
      },
    );
    runtime.engine = engine;
    metrics.setLoadProgress(1);
    metrics.attachEngine(() => engine.stats());
    server.attach({ engine, tokenizer, servedModelName, maxModelLen, log, tracing });
    const g = model.runner.geometry;
    log('info', 'model loaded', {
      model: servedModelName,
      seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
      quantization: options.quantization,
      backend: model.backendName,
      max_model_len: maxModelLen,
      max_num_batched_tokens: maxNumBatchedTokens,
      weight_bytes: model.weightBytes,
      weight_bytes_bf16: model.weightBytesBf16,
      resident_weight_bytes: model.residentWeightBytes ?? null,
      // Where the load's time went: GB/s from disk to placed weights, reads not hidden behind placing.
      load_gb_per_second: model.loadStats ? Number((model.loadStats.bytes / 1e9 / model.loadStats.seconds).toFixed(3)) : null,
      load_read_wait_seconds: model.loadStats ? Number(model.loadStats.readWaitSeconds.toFixed(3)) : null,
      load_place_seconds: model.loadStats ? Number(model.loadStats.placeSeconds.toFixed(3)) : null,
      kv_blocks: g.numBlocks,
      kv_cache_bytes: g.numBlocks * g.blockSize * g.kvBytesPerToken,
      state_bytes: g.numStateSlots * g.stateBytesPerSlot,
      kv_block_size: g.blockSize,
      state_slots: g.numStateSlots,
      max_num_seqs: engine.maxNumSeqs,
    });
    return model;
  })();
  runtime.ready.catch((error: Error) => {
    server.markFailed(error.message);
    log('error', 'model load failed', { model: servedModelName, error: error.message, cause: (error.cause as Error | undefined)?.message });
  });
  return runtime;
}

/** Logs load progress as JSON lines, at most once a second (and at the end), and forwards every update. */
function progressLogger(log: Logger, forward: (p: LoadProgress) => void): (p: LoadProgress) => void {
  let lastLogged = 0;
  return (p) => {
    forward(p);
    const t = performance.now();
    if (t - lastLogged < 1000 && p.ratio < 1) return;
    lastLogged = t;
    log('info', 'loading weights', {
      bytes_loaded: p.bytesLoaded,
      bytes_total: p.bytesTotal,
      percent: Number((p.ratio * 100).toFixed(1)),
      eta_seconds: p.etaSeconds !== undefined ? Number(p.etaSeconds.toFixed(1)) : null,
      tensor: p.tensorName,
    });
  };
}
