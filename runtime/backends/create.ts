// Picks and starts a backend by name. The CUDA backend is imported only when asked for (or probed by
// `auto`), so a CPU-only install never loads the native library.
import type { Backend } from './backend.js';
import { CpuBackend } from './cpu/index.js';
import type { BackendChoice } from '../engine/model-runner.js';

async function cudaBackend(): Promise<Backend> {
  const { CudaBackend } = await import('./cuda/index.js');
  return CudaBackend.open();
}

/** Whether a CUDA device can be used here (the native library loads and sees a GPU). */
export async function cudaAvailable(): Promise<{ ok: true } | { ok: false; reason: string }> {
  const { probeCuda } = await import('./cuda/native.js');
  return probeCuda();
}

/** One backend running the whole model (a tensor-parallel group makes its ranks' own: runtime/parallel). */
export async function createBackend(choice: BackendChoice): Promise<Backend> {
  let name = choice;
  if (choice === 'auto') name = (await cudaAvailable()).ok ? 'cuda' : 'cpu';
  return name === 'cuda' ? cudaBackend() : new CpuBackend();
}
