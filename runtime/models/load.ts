// loadModel: a Hugging Face Jamba checkpoint directory → a ModelRunner on a backend.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backend } from '../backends/backend.js';
import { CpuBackend } from '../backends/cpu/index.js';
import type { LoadedModel, LoadOptions } from '../engine/model-runner.js';
import { openCheckpoint } from '../loader/checkpoint.js';
import { loadWeights } from '../loader/load-weights.js';
import { parseJambaConfig } from './config.js';
import { cacheGeometry } from './geometry.js';
import { JambaModel } from './jamba.js';
import { ignorableTensors, jambaTensorSpecs } from './weights.js';
import { WeightStore } from './weight-store.js';

function createBackend(name: LoadOptions['backend']): Backend {
  if (name === 'cpu') return new CpuBackend();
  throw new Error(`load options: unknown backend ${JSON.stringify(name)} (supported: cpu)`);
}

/**
 * Weight memory: `weightBytes` counts a bf16/int8 deployment (bf16 tensors 2 bytes per parameter,
 * int8 tensors 1 byte per parameter + 4 per channel scale) and `weightBytesBf16` the same weights
 * all in bf16. The CPU backend actually holds non-quantized weights in fp32 (4 bytes per
 * parameter); that real figure is `residentWeightBytes`.
 */
export async function loadModel(dir: string, opts: LoadOptions): Promise<LoadedModel> {
  if (opts.quantization !== 'none' && opts.quantization !== 'expertsint8') {
    throw new Error(`load options: unknown quantization ${JSON.stringify(opts.quantization)} (supported: none, expertsint8)`);
  }
  const configPath = join(dir, 'config.json');
  const configText = await readFile(configPath, 'utf8').catch((cause: unknown) => {
    throw new Error(`${configPath}: cannot read`, { cause });
  });
  const config = parseJambaConfig(configText, configPath);
  const geometry = cacheGeometry(config, opts);
  const backend = createBackend(opts.backend);
  const store = new WeightStore(backend);
  const checkpoint = await openCheckpoint(dir);
  try {
    const bytes = await loadWeights(
      checkpoint,
      jambaTensorSpecs(config),
      { quantizeExperts: opts.quantization === 'expertsint8', ignorable: ignorableTensors(config), onProgress: opts.onProgress },
      (name, weight) => store.add(name, weight),
    );
    const runner = new JambaModel(config, backend, store, geometry);
    return {
      runner,
      info: {
        vocabSize: config.vocabSize,
        eosTokenIds: config.eosTokenIds,
        bosTokenId: config.bosTokenId,
        padTokenId: config.padTokenId,
      },
      weightBytes: bytes.deployed,
      weightBytesBf16: bytes.bf16,
      residentWeightBytes: backend.residentBytes().weights,
    };
  } catch (err) {
    backend.dispose();
    throw err;
  } finally {
    await checkpoint.close();
  }
}
