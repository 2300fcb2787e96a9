// The CUDA backend's staging memory for loading weights: one host region page-locked with the driver
// (cudaHostRegister), cut into the loader's read buffers by a ring. Uploads from page-locked memory are
// DMA transfers at the bus's rate; from ordinary memory the driver first copies through small staging
// buffers of its own, at a fraction of it.
import type { StagingMemory } from '../backend.js';
import { StagingRing } from '../../loader/staging-ring.js';
import { check, type NativeLib } from './native.js';

/** `bytes` of page-locked staging memory, or undefined when the driver refuses to lock it (a memlock limit). */
export function pinnedStaging(lib: NativeLib, bytes: number): StagingMemory | undefined {
  const region = Buffer.allocUnsafeSlow(bytes);
  if (lib.hostRegister(region) !== 0) return undefined;
  const ring = new StagingRing(region);
  let disposed = false;
  return {
    take: (n) => (disposed ? undefined : ring.take(n)),
    give: (buf) => ring.give(buf),
    dispose: () => {
      if (disposed) return;
      disposed = true;
      check(lib, lib.hostUnregister(region), 'unlocking the staging memory');
    },
  };
}
