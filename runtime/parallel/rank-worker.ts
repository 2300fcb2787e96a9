// One tensor-parallel rank on the CPU, in a worker thread: loads its shard of the checkpoint onto a
// CPU backend whose collectives go through shared memory, then runs the steps the parallel runner
// (cpu-group.ts) sends it, in order.
import { parentPort, workerData } from 'node:worker_threads';
import { CpuBackend } from '../backends/cpu/index.js';
import type { LoadedModel, LoadOptions, StepSequence } from '../engine/model-runner.js';
import { loadModelOn } from '../models/load.js';
import { type CollectiveBuffers, SharedMemoryCollective } from './collective.js';

export interface RankInit {
  dir: string;
  options: Omit<LoadOptions, 'onProgress'>;
  rank: number;
  buffers: CollectiveBuffers;
}

export type RankRequest = { type: 'step'; id: number; seqs: StepSequence[] } | { type: 'reset'; slot: number } | { type: 'dispose' };

export type RankReply =
  | { type: 'loaded'; info: Omit<LoadedModel, 'runner' | 'backend'>; geometry: LoadedModel['runner']['geometry'] }
  | { type: 'progress'; bytesLoaded: number; bytesTotal: number }
  | { type: 'stepped'; id: number; result: Awaited<ReturnType<LoadedModel['runner']['step']>> }
  | { type: 'failed'; id?: number; message: string };

const port = parentPort!;
const init = workerData as RankInit;

async function main(): Promise<void> {
  const backend = new CpuBackend(new SharedMemoryCollective(init.buffers, init.rank));
  let model: LoadedModel;
  try {
    model = await loadModelOn(backend, init.dir, {
      ...init.options,
      onProgress: init.rank === 0 ? (p) => port.postMessage({ type: 'progress', bytesLoaded: p.bytesLoaded, bytesTotal: p.bytesTotal } satisfies RankReply) : undefined,
    });
  } catch (error) {
    port.postMessage({ type: 'failed', message: (error as Error).message } satisfies RankReply);
    return;
  }
  const { runner, backend: _backend, ...info } = model;
  port.postMessage({ type: 'loaded', info, geometry: runner.geometry } satisfies RankReply);
  port.on('message', (request: RankRequest) => {
    if (request.type === 'dispose') {
      runner.dispose();
      port.close();
      return;
    }
    if (request.type === 'reset') {
      runner.resetStateSlot(request.slot);
      return;
    }
    runner.step(request.seqs).then(
      (result) => port.postMessage({ type: 'stepped', id: request.id, result } satisfies RankReply),
      (error: Error) => port.postMessage({ type: 'failed', id: request.id, message: error.message } satisfies RankReply),
    );
  });
}

void main();
