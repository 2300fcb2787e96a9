// The operator's memory-fit estimate (operator/api/sizing.ts, which the CRD's CEL rule embeds) against
// what the runtime's ranks really hold (memory.ts, from the tensor shapes and their shards): the API
// server must not accept a JambaDeployment whose ranks cannot fit, nor refuse one that fits.
import { checkFit, KNOWN_MODELS, MIB, sizingOf, USABLE_PERCENT, type Quantization } from '../../operator/api/sizing.js';
import { parseJambaConfig } from './config.js';
import { rankMemory } from './memory.js';
import { PRESETS } from './presets.js';

const MODELS: [string, string][] = [
  ['jamba-1.5-mini', 'ai21labs/AI21-Jamba-1.5-Mini'],
  ['jamba-1.5-large', 'ai21labs/AI21-Jamba-1.5-Large'],
];
const QUANT: [Quantization, 'none' | 'expertsint8'][] = [
  ['None', 'none'],
  ['ExpertsInt8', 'expertsint8'],
];

describe.each(MODELS)('%s', (preset, name) => {
  const cfg = parseJambaConfig(JSON.stringify(PRESETS[preset]), preset);
  const sizing = sizingOf(KNOWN_MODELS[name.toLowerCase()]!);

  test.each(QUANT.flatMap(([op, rt]) => [1, 2, 4, 8].map((tp) => [op, rt, tp] as const)))('%s (%s) at TP %i: weights, KV and state agree', (op, rt, tp) => {
    const ranks = Array.from({ length: tp }, (_, rank) => rankMemory(cfg, { rank, size: tp }, rt));
    const total = ranks.reduce((a, r) => a + r.weightBytes, 0);
    expect(Math.abs(total - sizing.weightsMiB[op] * MIB) / (sizing.weightsMiB[op] * MIB)).toBeLessThan(0.01);
    // Ranks are balanced: what is replicated (norms, router, conv taps) is a rounding error.
    expect(Math.max(...ranks.map((r) => r.weightBytes))).toBeLessThan((total / tp) * 1.01);
    expect(ranks.reduce((a, r) => a + r.kvBytesPerToken, 0)).toBe(sizing.kvKiBPerToken * 1024);
    expect(Math.ceil(ranks.reduce((a, r) => a + r.stateBytesPerSequence, 0) / MIB)).toBe(sizing.mambaStateMiB);
  });

  test('the API server admits exactly what fits on every rank (up to a 1% band)', () => {
    for (const [op, rt] of QUANT) {
      for (const gpus of [1, 2, 4, 8]) {
        for (const context of [4096, 65536, 262144]) {
          const minMemoryMiB = 81920; // an 80 GB GPU
          const ranks = Array.from({ length: gpus }, (_, rank) => rankMemory(cfg, { rank, size: gpus }, rt));
          const perRank = Math.max(...ranks.map((r) => r.weightBytes + r.kvBytesPerToken * context + r.stateBytesPerSequence));
          const usable = (minMemoryMiB * MIB * USABLE_PERCENT) / 100;
          const admitted = checkFit({ modelName: name, quantization: op, maxContextLength: context, gpusPerReplica: gpus, minMemoryMiB }).fits;
          if (Math.abs(perRank - usable) / usable > 0.01) expect({ op, gpus, context, admitted }).toEqual({ op, gpus, context, admitted: perRank <= usable });
        }
      }
    }
  });
});
