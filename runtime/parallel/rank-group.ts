// Tensor parallelism (`--tensor-parallel-size N`): N worker threads in this one process, each a rank
// holding its shard of the model (sharding.ts) on its own backend (docs/adr/0003-tensor-parallelism.md).
//   CPU   the ranks' all-reduces and gathers go through shared memory (collective.ts); the executable
//         specification of a sharded model, which tests run against the whole one.
//   CUDA  a context per rank on its own GPU (JAMBA_TP_DEVICES may map ranks to devices, several to one
//         in tests); the collectives are ops of each rank's step program (runtime/native/src/collective.cu),
//         so every rank must run its steps at the same time: each runs them on its own worker thread.
// Set-up runs in phases every rank finishes before the next: open (CUDA: the contexts form a group),
// place the weights, size the pools from the tightest rank's memory (so every rank's are the same
// size), then load. The engine sees one ModelRunner: every step goes to all ranks, which compute in
// parallel and agree bit for bit on the replicated results; rank 0's tokens are returned.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { DeviceMemory } from '../backends/backend.js';
import type { LoadedModel, LoadOptions, ModelRunner, SampleResult, StepSequence } from '../engine/model-runner.js';
import type { JambaConfig } from '../models/config.js';
import { CPU_DEFAULT_MAX_NUM_SEQS } from '../models/geometry.js';
import type { ModelSource } from '../models/load.js';
import { createCollectiveBuffers } from './collective.js';
import type { OpProfile, RankBackend, RankInit, RankReply, RankRequest } from './rank-worker.js';

/** Largest exchange buffer half a CUDA rank keeps; bigger collectives run in pieces. */
const CUDA_EXCHANGE_BYTES = 32 * 2 ** 20;

/** The compiled worker (jest runs the TypeScript sources, whose worker must be the built one). */
function workerScript(): URL {
  const here = new URL('./rank-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  const built = new URL('../../dist/runtime/parallel/rank-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new Error(`the tensor-parallel rank worker is not built (${fileURLToPath(built)}): run npm run build`);
}

/** Floats each rank exchanges at most: a step's rows × the widest reduced row, or its logits slice. */
export function exchangeFloats(cfg: JambaConfig, size: number, maxRows: number, maxSeqs: number): number {
  return Math.max(maxRows * Math.max(cfg.hiddenSize, cfg.mambaDtRank + 2 * cfg.mambaDState), maxSeqs * (cfg.vocabSize / size));
}

/**
 * The device of each rank: JAMBA_TP_DEVICES (comma-separated ordinals, one per rank; tests put
 * several ranks on one GPU), else rank r on device r.
 */
export function rankDevices(size: number, visible: number, env = process.env['JAMBA_TP_DEVICES']): number[] {
  const devices = env ? env.split(',').map((d) => Number(d.trim())) : Array.from({ length: size }, (_, r) => r);
  if (env && (devices.length !== size || devices.some((d) => !Number.isInteger(d) || d < 0))) {
    throw new Error(`JAMBA_TP_DEVICES=${env}: give ${size} device ordinals, one per rank (for example ${Array.from({ length: size }, (_, r) => r).join(',')})`);
  }
  const missing = devices.filter((d) => d >= visible);
  if (missing.length > 0) {
    throw new Error(
      `tensor parallel size ${size} needs ${env ? `devices ${[...new Set(devices)].join(', ')}` : `${size} GPUs`}, but ${visible} ${visible === 1 ? 'is' : 'are'} visible; ` +
        'give the pod as many GPUs as --tensor-parallel-size, or lower it',
    );
  }
  return devices;
}

type Waiter = { resolve: (r: Extract<RankReply, { type: 'stepped' | 'profiled' }>) => void; reject: (e: Error) => void };

/** One rank's worker and its set-up replies, each awaited in turn. */
class Rank {
  readonly worker: Worker;
  private waiting = new Map<number, Waiter>();
  private phases = new Map<RankReply['type'], { resolve: (r: RankReply) => void; reject: (e: Error) => void }>();
  /** Set-up replies that came before anyone awaited them. */
  private early = new Map<RankReply['type'], RankReply>();
  private failure?: Error;

  constructor(
    private readonly init: RankInit,
    onProgress?: (bytesLoaded: number, bytesTotal: number) => void,
  ) {
    this.worker = new Worker(workerScript(), { workerData: init });
    this.worker.on('message', (reply: RankReply) => {
      if (reply.type === 'progress') onProgress?.(reply.bytesLoaded, reply.bytesTotal);
      else if (reply.type === 'stepped' || reply.type === 'profiled') this.settle(reply.id, (w) => w.resolve(reply));
      else if (reply.type === 'failed' && reply.id !== undefined) this.settle(reply.id, (w) => w.reject(new Error(`rank ${init.rank}: ${reply.message}`)));
      else if (reply.type === 'failed') this.fail(new Error(`rank ${init.rank}: ${reply.message}`));
      else if (this.phases.has(reply.type)) this.phases.get(reply.type)!.resolve(reply);
      else this.early.set(reply.type, reply);
    });
    this.worker.on('error', (error) => this.fail(error));
    this.worker.on('exit', (code) => this.fail(new Error(`rank ${init.rank}: its worker exited (code ${code})`)));
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const p of this.phases.values()) p.reject(error);
    for (const w of this.waiting.values()) w.reject(error);
    this.phases.clear();
    this.waiting.clear();
  }

  /** The rank's next set-up reply of this type. */
  phase<T extends RankReply['type']>(type: T): Promise<Extract<RankReply, { type: T }>> {
    if (this.failure) return Promise.reject(this.failure);
    const came = this.early.get(type);
    if (came) {
      this.early.delete(type);
      return Promise.resolve(came as Extract<RankReply, { type: T }>);
    }
    return new Promise((resolve, reject) => {
      this.phases.set(type, { resolve: (r) => (this.phases.delete(type), resolve(r as Extract<RankReply, { type: T }>)), reject });
    });
  }

  private settle(id: number, f: (w: Waiter) => void): void {
    const w = this.waiting.get(id);
    this.waiting.delete(id);
    if (w) f(w);
  }

  send(request: RankRequest): void {
    this.worker.postMessage(request);
  }

  /** Sends a request that the rank answers by its id. */
  ask<T extends 'stepped' | 'profiled'>(request: Extract<RankRequest, { type: 'step' | 'profile' }>): Promise<Extract<RankReply, { type: T }>> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting.set(request.id, { resolve: (r) => resolve(r as Extract<RankReply, { type: T }>), reject });
      this.send(request);
    });
  }

  get rank(): number {
    return this.init.rank;
  }
}

class ParallelRunner implements ModelRunner {
  private nextId = 0;
  private lastDeviceMs?: number;

  constructor(
    private readonly ranks: Rank[],
    readonly vocabSize: number,
    readonly geometry: ModelRunner['geometry'],
  ) {}

  async step(seqs: StepSequence[]): Promise<SampleResult> {
    const id = this.nextId++;
    const results = await Promise.allSettled(this.ranks.map((r) => r.ask<'stepped'>({ type: 'step', id, seqs })));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0) throw new Error(failed.map((f) => (f.reason as Error).message).join('; '));
    const stepped = results.map((r) => (r as PromiseFulfilledResult<Extract<RankReply, { type: 'stepped' }>>).value);
    const times = stepped.map((s) => s.deviceMs).filter((ms): ms is number => ms !== undefined);
    this.lastDeviceMs = times.length > 0 ? Math.max(...times) : undefined;
    return stepped[0]!.result;
  }

  /** The last step's device time on the slowest rank (benchmarks; undefined on the CPU). */
  lastStepMs(): number | undefined {
    return this.lastDeviceMs;
  }

  /** Rank 0's per-op device time since the last read (JAMBA_PROFILE_OPS=1); every rank runs the same ops. */
  async opProfile(): Promise<OpProfile | undefined> {
    return (await this.ranks[0]!.ask<'profiled'>({ type: 'profile', id: this.nextId++ })).profile;
  }

  resetStateSlot(slot: number): void {
    for (const r of this.ranks) r.send({ type: 'reset', slot });
  }

  dispose(): void {
    for (const r of this.ranks) r.send({ type: 'dispose' });
  }
}

/** The memory of the rank with the least free (undefined on the CPU). */
function tightest(memories: (DeviceMemory | undefined)[]): DeviceMemory | undefined {
  return memories.reduce<DeviceMemory | undefined>((a, m) => (m && (!a || m.freeBytes < a.freeBytes) ? m : a), undefined);
}

/** Loads `source` over `opts.tensorParallelSize` ranks of `kind` backends in worker threads. */
export async function loadRankGroup(source: ModelSource, config: JambaConfig, opts: LoadOptions, kind: 'cpu' | 'cuda'): Promise<LoadedModel> {
  const size = opts.tensorParallelSize ?? 1;
  const { onProgress, ...rest } = opts;
  let backends: RankBackend[];
  let options = rest;
  if (kind === 'cpu') {
    const maxNumSeqs = opts.maxNumSeqs ?? CPU_DEFAULT_MAX_NUM_SEQS;
    const maxRows = Math.max(opts.maxNumBatchedTokens ?? 512, maxNumSeqs);
    const buffers = createCollectiveBuffers(size, exchangeFloats(config, size, maxRows, maxNumSeqs));
    options = { ...rest, maxNumSeqs }; // every rank sizes its state pool as the buffers were sized
    backends = Array.from({ length: size }, () => ({ kind: 'cpu', buffers }));
  } else {
    const { deviceCount } = await import('../backends/cuda/native.js');
    const devices = rankDevices(size, await deviceCount());
    backends = devices.map((device) => ({ kind: 'cuda', device, devicePeers: devices.filter((d) => d === device).length }));
  }
  const started = performance.now();
  const ranks = backends.map(
    (backend, rank) =>
      new Rank(
        { source, options, rank, size, backend },
        rank === 0 && onProgress ? (done, total) => onProgress({ bytesLoaded: done, bytesTotal: total, ratio: total ? done / total : 1, tensorName: '' }) : undefined,
      ),
  );
  try {
    if (kind === 'cuda') {
      const contexts = await Promise.all(ranks.map((r) => r.phase('context')));
      const { createGroup } = await import('../backends/cuda/native.js');
      const maxRows = Math.max(opts.maxNumBatchedTokens ?? 8192, opts.maxNumSeqs ?? 256);
      const exchange = Math.min(CUDA_EXCHANGE_BYTES, 4 * exchangeFloats(config, size, maxRows, opts.maxNumSeqs ?? 256));
      // NCCL is used where every rank has its own device (the library decides; ranks sharing one meet on the host).
      await createGroup(contexts.map((c) => c.context), exchange, { nccl: true });
      for (const r of ranks) r.send({ type: 'grouped' });
    }
    const placed = await Promise.all(ranks.map((r) => r.phase('placed')));
    const loading = ranks.map((r) => r.phase('loaded'));
    const memory = tightest(placed.map((p) => p.memory));
    for (const r of ranks) r.send({ type: 'finish', memory });
    const loaded = await Promise.all(loading);
    const first = loaded[0]!;
    if (loaded.some((l) => JSON.stringify(l.geometry) !== JSON.stringify(first.geometry))) {
      throw new Error(`tensor-parallel ranks sized their pools differently: ${loaded.map((l) => JSON.stringify(l.geometry)).join(' vs ')}`);
    }
    const runner = new ParallelRunner(ranks, config.vocabSize, first.geometry);
    const sum = (pick: (l: (typeof loaded)[number]) => number | undefined): number => loaded.reduce((a, l) => a + (pick(l) ?? 0), 0);
    return {
      ...first.info,
      runner,
      backendName: kind,
      weightBytes: sum((l) => l.info.weightBytes),
      weightBytesBf16: sum((l) => l.info.weightBytesBf16),
      residentWeightBytes: sum((l) => l.info.residentWeightBytes),
      loadStats: first.info.loadStats && { ...first.info.loadStats, bytes: sum((l) => l.info.loadStats?.bytes), seconds: (performance.now() - started) / 1000 },
    };
  } catch (error) {
    await Promise.all(ranks.map((r) => r.worker.terminate()));
    throw error;
  }
}
