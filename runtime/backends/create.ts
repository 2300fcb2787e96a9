// Picks and starts a backend by name. The CUDA backend is imported only when asked for (or probed by
// `auto`), so a CPU-only install never loads the native library.
import type { Backend } from './backend.js';
import { CpuBackend } from './cpu/index.js';
import type { BackendChoice } from '../engine/model-runner.js';

export interface BackendOptions {
  tensorParallelSize: number;
}

async function cudaBackend(): Promise<Backend> {
  const { CudaBackend } = await import('./cuda/index.js');
  return CudaBackend.open();
}

/** Whether a CUDA device can be used here (the native library loads and sees a GPU). */
export async function cudaAvailable(): Promise<{ ok: true } | { ok: false; reason: string }> {
  const { probeCuda } = await import('./cuda/native.js');
  return probeCuda();
}

export async function createBackend(choice: BackendChoice, opts: BackendOptions): Promise<Backend> {
  let name = choice;
  if (choice === 'auto') name = (await cudaAvailable()).ok ? 'cuda' : 'cpu';
  const backend = name === 'cuda' ? await cudaBackend() : new CpuBackend();
  if (opts.tensorParallelSize !== 1 && backend.name !== 'cpu') {
    backend.dispose();
    throw new Error(
      `tensor parallel size ${opts.tensorParallelSize} is not supported by the ${backend.name} backend yet ` +
        '(it runs the model on one device); use --tensor-parallel-size 1',
    );
  }
  return backend;
}
