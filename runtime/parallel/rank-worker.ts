// One tensor-parallel rank, in a worker thread: opens its backend (a CPU backend whose collectives go
// through shared memory, or a CUDA context on its device), places its shard of the weights, sizes its
// pools as the group agrees (rank-group.ts), then runs the steps the group sends it, in order.
import { parentPort, workerData } from 'node:worker_threads';
import type { Backend, DeviceMemory } from '../backends/backend.js';
import { CpuBackend } from '../backends/cpu/index.js';
import type { LoadedModel, LoadOptions, StepSequence } from '../engine/model-runner.js';
import { finishModel, type ModelSource, placeWeights } from '../models/load.js';
import { type CollectiveBuffers, SharedMemoryCollective } from './collective.js';

export type RankBackend =
  | { kind: 'cpu'; buffers: CollectiveBuffers }
  /** devicePeers: ranks of the group on the same device (1 in production; tests share one GPU). */
  | { kind: 'cuda'; device: number; devicePeers: number };

export type OpProfile = Record<string, { ms: number; calls: number }>;

/** What a CUDA backend measures, read where the rank's backend offers it. */
interface Measured {
  lastStepMs?: () => number;
  opProfile?: () => OpProfile | undefined;
}

export interface RankInit {
  source: ModelSource;
  options: Omit<LoadOptions, 'onProgress'>;
  rank: number;
  size: number;
  backend: RankBackend;
}

export type RankRequest =
  /** Every rank's context is in the group now (CUDA): place the weights. */
  | { type: 'grouped' }
  /** Size the pools from this memory (the tightest rank's), so every rank's come out the same. */
  | { type: 'finish'; memory?: DeviceMemory }
  | { type: 'step'; id: number; seqs: StepSequence[] }
  /** Per-op device time since the last read (benchmarks, JAMBA_PROFILE_OPS=1). */
  | { type: 'profile'; id: number }
  | { type: 'reset'; slot: number }
  | { type: 'dispose' };

export type RankReply =
  /** The CUDA context is open (its id goes into the group). */
  | { type: 'context'; context: number }
  /** The weights are placed; the device memory they left. */
  | { type: 'placed'; memory?: DeviceMemory }
  | { type: 'loaded'; info: Omit<LoadedModel, 'runner' | 'backend'>; geometry: LoadedModel['runner']['geometry'] }
  | { type: 'progress'; bytesLoaded: number; bytesTotal: number }
  /** deviceMs: the step's device time, where the backend measures it. */
  | { type: 'stepped'; id: number; result: Awaited<ReturnType<LoadedModel['runner']['step']>>; deviceMs?: number }
  | { type: 'profiled'; id: number; profile?: OpProfile }
  | { type: 'failed'; id?: number; message: string };

const port = parentPort!;
const init = workerData as RankInit;
const trace = process.env['JAMBA_TP_TRACE'] ? (what: string) => process.stderr.write(`[rank ${init.rank} ${new Date().toISOString()}] ${what}\n`) : () => {};
const reply = (r: RankReply): void => {
  if (r.type !== 'progress') trace(`reply ${r.type}`);
  port.postMessage(r);
};

/** The next request of `type` from the group (the set-up phases come one at a time, in order). */
function next<T extends RankRequest['type']>(type: T): Promise<Extract<RankRequest, { type: T }>> {
  return new Promise((resolve) => {
    const on = (request: RankRequest): void => {
      if (request.type !== type) return;
      port.off('message', on);
      resolve(request as Extract<RankRequest, { type: T }>);
    };
    port.on('message', on);
  });
}

async function openBackend(): Promise<Backend> {
  const shard = { rank: init.rank, size: init.size };
  if (init.backend.kind === 'cpu') return new CpuBackend(new SharedMemoryCollective(init.backend.buffers, init.rank));
  const { CudaBackend } = await import('../backends/cuda/index.js');
  // Steps run on this thread: the ranks wait for each other inside them (see ContextOptions).
  const backend = await CudaBackend.open(init.backend.device, { shard, devicePeers: init.backend.devicePeers, blockingRuns: true });
  const grouped = next('grouped');
  reply({ type: 'context', context: backend.context });
  await grouped;
  return backend;
}

async function load(): Promise<LoadedModel> {
  const backend = await openBackend();
  try {
    const onProgress = init.rank === 0 ? (p: { bytesLoaded: number; bytesTotal: number }) => reply({ type: 'progress', bytesLoaded: p.bytesLoaded, bytesTotal: p.bytesTotal }) : undefined;
    const { config, store, loadStats } = await placeWeights(backend, init.source, { ...init.options, onProgress });
    const finish = next('finish');
    reply({ type: 'placed', memory: backend.deviceMemory() });
    const { memory } = await finish;
    return { ...finishModel(config, backend, store, init.options, memory), loadStats };
  } catch (error) {
    backend.dispose();
    throw error;
  }
}

async function main(): Promise<void> {
  let model: LoadedModel;
  try {
    model = await load();
  } catch (error) {
    reply({ type: 'failed', message: (error as Error).message });
    return;
  }
  const { runner, backend, ...info } = model;
  const measured = (backend ?? {}) as Measured;
  reply({ type: 'loaded', info, geometry: runner.geometry });
  port.on('message', (request: RankRequest) => {
    if (request.type === 'dispose') {
      runner.dispose(); // and its backend
      port.close();
      return;
    }
    if (request.type === 'reset') {
      runner.resetStateSlot(request.slot);
      return;
    }
    if (request.type === 'profile') {
      reply({ type: 'profiled', id: request.id, profile: measured.opProfile?.() });
      return;
    }
    if (request.type !== 'step') return;
    trace(`step ${request.id}: ${request.seqs.length} sequences`);
    runner.step(request.seqs).then(
      (result) => reply({ type: 'stepped', id: request.id, result, deviceMs: measured.lastStepMs?.() }),
      (error: Error) => reply({ type: 'failed', id: request.id, message: error.message }),
    );
  });
}

void main();
