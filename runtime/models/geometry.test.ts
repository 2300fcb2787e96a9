// The GPU's default max-num-seqs: vLLM's 256 where memory allows, fewer where the Mamba state would
// crowd out the KV cache, never 0.
import { parseJambaConfig } from './config.js';
import { defaultDeviceMaxNumSeqs, GPU_DEFAULT_MAX_NUM_SEQS, stateBytesPerSlot } from './geometry.js';
import { PRESETS } from './presets.js';

const GB = 1e9;
const mini = parseJambaConfig(JSON.stringify(PRESETS['jamba-1.5-mini']), 'jamba-1.5-mini');
const GPU_BYTES = { kv: 2, convState: 2, ssmState: 4 };

describe('defaultDeviceMaxNumSeqs', () => {
  test('Mini with ExpertsInt8 on an H200: 256', () => {
    expect(defaultDeviceMaxNumSeqs(mini, GPU_BYTES, { totalBytes: 143 * GB, freeBytes: 143 * GB - 55.3 * GB }, 0.9)).toBe(GPU_DEFAULT_MAX_NUM_SEQS);
  });

  test('little memory left after the weights: the state stays within a quarter of it', () => {
    const perSlot = stateBytesPerSlot(mini, GPU_BYTES);
    const memory = { totalBytes: 80 * GB, freeBytes: 80 * GB - 70 * GB };
    const left = Math.floor(0.9 * memory.totalBytes) - 70 * GB;
    const n = defaultDeviceMaxNumSeqs(mini, GPU_BYTES, memory, 0.9);
    expect(n).toBe(Math.floor(left / 4 / perSlot));
    expect(n).toBeGreaterThan(1);
    expect(n).toBeLessThan(GPU_DEFAULT_MAX_NUM_SEQS);
    expect(n * perSlot).toBeLessThanOrEqual(left / 4);
  });

  test('nothing left: one sequence (the pool check then says what to change)', () => {
    expect(defaultDeviceMaxNumSeqs(mini, GPU_BYTES, { totalBytes: 80 * GB, freeBytes: 0 }, 0.9)).toBe(1);
  });
});
