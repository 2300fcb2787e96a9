// Loading checkpoints through loadModel: sharded and single-file, progress, every checkpoint error
// naming its file and tensor, and ExpertsInt8 storage and memory.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CpuTensor } from '../../runtime/backends/cpu/tensor.js';
import { toFloat32 } from '../../runtime/loader/dtype.js';
import { readSafetensorsHeader } from '../../runtime/loader/safetensors.js';
import { bf16Bytes, f16Bytes, f32Bytes, type TensorToWrite } from '../../runtime/loader/safetensors-writer.js';
import { JambaModel, loadModel, parseJambaConfig } from '../../runtime/models/index.js';
import type { LoadOptions, LoadProgress } from '../../runtime/models/index.js';
import { greedyRow, topOf } from '../../runtime/models/testing/greedy.js';
import { writeTinyCheckpoint } from '../../runtime/models/testing/tiny-checkpoint.js';
import { jambaTensorSpecs } from '../../runtime/models/weights.js';
import { isExpertsInt8Weight } from '../../runtime/quant/expertsint8.js';

const opts: LoadOptions = { quantization: 'none', backend: 'cpu', maxModelLen: 64, maxNumSeqs: 2 };

async function tmp(name: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `jamba-${name}-`));
}

/** The 20 most likely next tokens after a fixed prompt, as [id, logprob] pairs, best first. */
async function logitsOf(dir: string, quantization: LoadOptions['quantization'] = 'none'): Promise<[number, number][]> {
  const m = await loadModel(dir, { ...opts, quantization });
  const sampled = await m.runner.step([{ stateSlot: 0, blockTable: Int32Array.of(0, 1, 2), cachedLen: 0, tokens: Int32Array.of(3, 9, 27, 81), sample: greedyRow(20) }]);
  m.runner.dispose();
  return topOf(sampled, 0);
}

/** Largest logprob difference over the tokens both lists hold (the lists must share most tokens). */
function maxDiff(a: [number, number][], b: [number, number][]): number {
  const other = new Map(b);
  const shared = a.filter(([id]) => other.has(id));
  expect(shared.length).toBeGreaterThanOrEqual(15);
  return Math.max(...shared.map(([id, lp]) => Math.abs(lp - other.get(id)!)));
}

test('a sharded checkpoint (index + several shards) loads to the same model as a single file; progress is monotone to 1', async () => {
  const single = await tmp('single');
  const sharded = await tmp('sharded');
  await writeTinyCheckpoint(single, { seed: 9 });
  const config = await writeTinyCheckpoint(sharded, { seed: 9, shardSize: 20 });
  const progress: LoadProgress[] = [];
  const m = await loadModel(sharded, { ...opts, onProgress: (p) => progress.push(p) });
  m.runner.dispose();
  expect(progress.length).toBe(jambaTensorSpecs(parseJambaConfig(JSON.stringify(config))).length);
  for (let i = 1; i < progress.length; i++) expect(progress[i]!.bytesLoaded).toBeGreaterThan(progress[i - 1]!.bytesLoaded);
  const last = progress.at(-1)!;
  expect(last.ratio).toBe(1);
  expect(last.bytesLoaded).toBe(last.bytesTotal);
  expect(last.bytesTotal).toBe(m.weightBytesBf16); // a bf16 checkpoint: its bytes are the bf16 size
  expect(progress.every((p) => p.tensorName.length > 0 && p.ratio >= 0 && p.ratio <= 1)).toBe(true);
  expect([...(await logitsOf(sharded))]).toEqual([...(await logitsOf(single))]);
});

test('fp32 and fp16 checkpoints load too: fp32 copies of the bf16 values give the same logits', async () => {
  const bf16 = await tmp('bf16');
  const fp32 = await tmp('fp32');
  const fp16 = await tmp('fp16');
  const convert = (dtype: 'F32' | 'F16') => (t: Record<string, TensorToWrite>) => {
    for (const [name, tensor] of Object.entries(t)) {
      const values = toFloat32(tensor.data, 'BF16', tensor.data.length / 2);
      t[name] = { dtype, shape: tensor.shape, data: dtype === 'F32' ? f32Bytes(values) : f16Bytes(values) };
    }
  };
  await writeTinyCheckpoint(bf16, { seed: 6 });
  await writeTinyCheckpoint(fp32, { seed: 6, edit: convert('F32') });
  await writeTinyCheckpoint(fp16, { seed: 6, edit: convert('F16') });
  const expected = await logitsOf(bf16);
  expect([...(await logitsOf(fp32))]).toEqual([...expected]);
  // fp16 holds the bf16 values exactly except the tiniest (subnormal in fp16): close, if not equal.
  expect((await readSafetensorsHeader(join(fp16, 'model.safetensors'))).every((e) => e.dtype === 'F16')).toBe(true);
  expect(maxDiff(await logitsOf(fp16), expected)).toBeLessThan(0.05);
});

test('one expert: every layer is a dense MLP (no router in the checkpoint)', async () => {
  const dir = await tmp('dense');
  const config = await writeTinyCheckpoint(dir, { seed: 2, config: { num_experts: 1 } });
  const names = jambaTensorSpecs(parseJambaConfig(JSON.stringify(config))).map((s) => s.name);
  expect(names.some((n) => n.includes('router') || n.includes('experts'))).toBe(false);
  const top = await logitsOf(dir);
  expect(top.length).toBe(20);
  expect(top.every(([id, lp]) => id >= 0 && id < 97 && Number.isFinite(lp) && lp < 0)).toBe(true);
});

test('tied embeddings: lm_head is the embedding matrix (and a saved lm_head.weight is ignored)', async () => {
  const untied = await tmp('untied');
  const tied = await tmp('tied');
  const tiedWithHead = await tmp('tied-head');
  await writeTinyCheckpoint(untied, { seed: 3, edit: (t) => (t['lm_head.weight'] = t['model.embed_tokens.weight']!) });
  await writeTinyCheckpoint(tied, { seed: 3, config: { tie_word_embeddings: true } });
  await writeTinyCheckpoint(tiedWithHead, {
    seed: 3,
    config: { tie_word_embeddings: true },
    edit: (t) => (t['lm_head.weight'] = { ...t['model.embed_tokens.weight']!, data: new Uint8Array(t['model.embed_tokens.weight']!.data.length) }),
  });
  const expected = [...(await logitsOf(untied))];
  expect([...(await logitsOf(tied))]).toEqual(expected);
  expect([...(await logitsOf(tiedWithHead))]).toEqual(expected); // the zeroed lm_head.weight was not used
});

describe('checkpoint errors name the file and the tensor', () => {
  const layer0 = 'model.layers.0.';
  test.each([
    ['missing tensor', (t: Record<string, unknown>) => delete t[`${layer0}mamba.A_log`], /model\.safetensors: missing tensor model\.layers\.0\.mamba\.A_log \(shape \[64, 8\]\)/],
    [
      'unexpected tensor',
      (t: Record<string, unknown>) => (t['model.layers.0.mamba.extra'] = { dtype: 'BF16', shape: [2], data: bf16Bytes([1, 2]) }),
      /model\.safetensors: unexpected tensor model\.layers\.0\.mamba\.extra/,
    ],
    [
      'wrong shape',
      (t: Record<string, unknown>) => (t[`${layer0}input_layernorm.weight`] = { dtype: 'BF16', shape: [31], data: bf16Bytes(new Array(31).fill(1)) }),
      /model\.safetensors: tensor model\.layers\.0\.input_layernorm\.weight has shape \[31\], expected \[32\]/,
    ],
    [
      'unsupported dtype',
      (t: Record<string, unknown>) => (t[`${layer0}mamba.D`] = { dtype: 'F64', shape: [64], data: new Uint8Array(512) }),
      /model\.safetensors: tensor model\.layers\.0\.mamba\.D: unsupported dtype F64/,
    ],
  ])('%s', async (_name, edit, message) => {
    const dir = await tmp('broken');
    await writeTinyCheckpoint(dir, { edit: (t) => void edit(t) });
    await expect(loadModel(dir, opts)).rejects.toThrow(message);
  });

  test('unsupported config value names config.json and the field', async () => {
    const dir = await tmp('badcfg');
    const config = await writeTinyCheckpoint(dir);
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, num_experts_per_tok: 9 }));
    await expect(loadModel(dir, opts)).rejects.toThrow(`${join(dir, 'config.json')}: num_experts_per_tok (9) must not exceed num_experts (4)`);
  });

  test('a missing directory names config.json', async () => {
    await expect(loadModel('/nonexistent/model', opts)).rejects.toThrow('/nonexistent/model/config.json: cannot read');
  });
});

test('ExpertsInt8 keeps expert and MLP weights as Int8Array only and cuts weight bytes by the amount the shapes predict', async () => {
  const dir = await tmp('int8');
  const config = await writeTinyCheckpoint(dir, { seed: 4 });
  const specs = jambaTensorSpecs(parseJambaConfig(JSON.stringify(config)));
  const full = await loadModel(dir, opts);
  const q = await loadModel(dir, { ...opts, quantization: 'expertsint8' });
  const model = q.runner as JambaModel;

  const quantized = specs.filter((s) => isExpertsInt8Weight(s.name));
  expect(quantized.length).toBe(2 * (4 * 3) + 2 * 3); // 2 MoE layers × 4 experts × 3, 2 dense MLPs × 3
  expect(model.weights.int8Names().sort()).toEqual(quantized.map((s) => s.name).sort());
  expect(model.weights.denseNames().filter(isExpertsInt8Weight)).toEqual([]); // no full-precision copy kept
  for (const s of quantized) {
    const prefix = s.name.replace(/\.weight$/, '');
    const w = model.weights.linear(prefix);
    expect(w.kind).toBe('int8');
    expect((w.weight as CpuTensor).data).toBeInstanceOf(Int8Array);
  }

  // Expected saving: each quantized [rows, cols] weight goes from 2·rows·cols bytes to rows·cols + 4·rows.
  const saving = quantized.reduce((sum, s) => sum + 2 * s.shape[0]! * s.shape[1]! - (s.shape[0]! * s.shape[1]! + 4 * s.shape[0]!), 0);
  const params = specs.reduce((sum, s) => sum + s.shape.reduce((a, b) => a * b, 1), 0);
  expect(full.weightBytesBf16).toBe(2 * params);
  expect(full.weightBytes).toBe(full.weightBytesBf16);
  expect(q.weightBytesBf16).toBe(full.weightBytesBf16);
  expect(q.weightBytes).toBe(q.weightBytesBf16 - saving);
  expect(q.weightBytes).toBeLessThan(q.weightBytesBf16);
  // Resident on the CPU backend: fp32 for the rest (4 bytes), int8 + fp32 scales for the quantized ones.
  expect(full.residentWeightBytes).toBe(4 * params);
  const quantizedParams = quantized.reduce((sum, s) => sum + s.shape[0]! * s.shape[1]!, 0);
  const quantizedRows = quantized.reduce((sum, s) => sum + s.shape[0]!, 0);
  expect(q.residentWeightBytes).toBe(4 * (params - quantizedParams) + quantizedParams + 4 * quantizedRows);

  // And it still computes nearly the same thing (quantization error only).
  const a = await logitsOf(dir);
  const b = await logitsOf(dir, 'expertsint8');
  const diff = maxDiff(a, b);
  expect(diff).toBeGreaterThan(0);
  expect(diff).toBeLessThan(0.5);
  full.runner.dispose();
  q.runner.dispose();
});

test('pools too large for memory give an error that says what to lower', async () => {
  const dir = await tmp('huge');
  await writeTinyCheckpoint(dir);
  await expect(loadModel(dir, { ...opts, kvNumBlocks: 2 ** 31 })).rejects.toThrow(
    /cpu backend: cannot allocate the KV cache of 2147483648 blocks × 16 tokens \(\d+\.\d+ GiB\); lower the max model length/,
  );
});
