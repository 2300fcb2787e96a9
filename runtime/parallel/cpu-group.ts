// Tensor parallelism on the CPU (`--backend cpu --tensor-parallel-size N`): N worker threads, each a
// rank holding its shard of the model (sharding.ts) on a CPU backend; their all-reduces and gathers go
// through shared memory (collective.ts). The engine sees one ModelRunner: every step goes to all ranks,
// which compute in parallel and agree bit for bit on the replicated results; rank 0's tokens are
// returned. It is the executable specification of a sharded model: tests run it against the whole one.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { LoadedModel, LoadOptions, ModelRunner, SampleResult, StepSequence } from '../engine/model-runner.js';
import type { JambaConfig } from '../models/config.js';
import { CPU_DEFAULT_MAX_NUM_SEQS } from '../models/geometry.js';
import { createCollectiveBuffers } from './collective.js';
import type { RankInit, RankReply, RankRequest } from './rank-worker.js';

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

class Rank {
  readonly worker: Worker;
  private waiting = new Map<number, { resolve: (r: SampleResult) => void; reject: (e: Error) => void }>();
  loaded: Promise<Extract<RankReply, { type: 'loaded' }>>;

  constructor(init: RankInit, onProgress?: (bytesLoaded: number, bytesTotal: number) => void) {
    this.worker = new Worker(workerScript(), { workerData: init });
    this.loaded = new Promise((resolve, reject) => {
      this.worker.on('message', (reply: RankReply) => {
        if (reply.type === 'loaded') resolve(reply);
        else if (reply.type === 'progress') onProgress?.(reply.bytesLoaded, reply.bytesTotal);
        else if (reply.type === 'stepped') this.settle(reply.id, (w) => w.resolve(reply.result));
        else if (reply.id === undefined) reject(new Error(`rank ${init.rank}: ${reply.message}`));
        else this.settle(reply.id, (w) => w.reject(new Error(`rank ${init.rank}: ${reply.message}`)));
      });
      this.worker.on('error', (error) => {
        reject(error);
        for (const w of this.waiting.values()) w.reject(error);
        this.waiting.clear();
      });
    });
    this.loaded.catch(() => {});
  }

  private settle(id: number, f: (w: { resolve: (r: SampleResult) => void; reject: (e: Error) => void }) => void): void {
    const w = this.waiting.get(id);
    this.waiting.delete(id);
    if (w) f(w);
  }

  send(request: RankRequest): void {
    this.worker.postMessage(request);
  }

  step(id: number, seqs: StepSequence[]): Promise<SampleResult> {
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.send({ type: 'step', id, seqs });
    });
  }
}

class ParallelRunner implements ModelRunner {
  private nextId = 0;

  constructor(
    private readonly ranks: Rank[],
    readonly vocabSize: number,
    readonly geometry: ModelRunner['geometry'],
  ) {}

  async step(seqs: StepSequence[]): Promise<SampleResult> {
    const id = this.nextId++;
    const results = await Promise.allSettled(this.ranks.map((r) => r.step(id, seqs)));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0) throw new Error(failed.map((f) => (f.reason as Error).message).join('; '));
    return (results[0] as PromiseFulfilledResult<SampleResult>).value;
  }

  resetStateSlot(slot: number): void {
    for (const r of this.ranks) r.send({ type: 'reset', slot });
  }

  dispose(): void {
    for (const r of this.ranks) r.send({ type: 'dispose' });
  }
}

/** Loads `dir` over `opts.tensorParallelSize` CPU ranks in worker threads. */
export async function loadCpuGroup(dir: string, config: JambaConfig, opts: LoadOptions): Promise<LoadedModel> {
  const size = opts.tensorParallelSize ?? 1;
  const maxNumSeqs = opts.maxNumSeqs ?? CPU_DEFAULT_MAX_NUM_SEQS;
  const maxRows = Math.max(opts.maxNumBatchedTokens ?? 512, maxNumSeqs);
  const buffers = createCollectiveBuffers(size, exchangeFloats(config, size, maxRows, maxNumSeqs));
  const { onProgress, ...rest } = opts;
  const options = { ...rest, maxNumSeqs }; // every rank sizes its state pool as the buffers were sized
  const started = performance.now();
  const ranks = Array.from(
    { length: size },
    (_, rank) =>
      new Rank({ dir, options, rank, buffers }, rank === 0 && onProgress ? (done, total) => onProgress({ bytesLoaded: done, bytesTotal: total, ratio: total ? done / total : 1, tensorName: '' }) : undefined),
  );
  try {
    const loaded = await Promise.all(ranks.map((r) => r.loaded));
    const first = loaded[0]!;
    const runner = new ParallelRunner(ranks, config.vocabSize, first.geometry);
    const sum = (pick: (l: (typeof loaded)[number]) => number | undefined): number => loaded.reduce((a, l) => a + (pick(l) ?? 0), 0);
    return {
      ...first.info,
      runner,
      backendName: 'cpu',
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
