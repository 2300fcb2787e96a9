// What a CUDA tensor-parallel rank records, on the stand-in library (CI has no GPU; tools/gpu/check.ts
// runs the collectives and TP fixtures on the real one): the model's real program for the jamba-tiny
// fixture over a rank of 2 holds one all-reduce after the embedding and after every row-parallel layer,
// one gather of the logits slices, and the embedding of its own vocabulary slice; the whole model holds
// no collective. Also how ranks map to devices.
import { join } from 'node:path';
import type { LoadedModel } from '../../engine/model-runner.js';
import { readFileSync } from 'node:fs';
import { layerMixer, parseJambaConfig } from '../../models/config.js';
import { loadModelOn } from '../../models/load.js';
import { rankDevices } from '../../parallel/rank-group.js';
import { CudaBackend } from './index.js';
import { OP } from './program.js';
import { opCodes, standIn } from './stand-in.js';

const FIXTURE = join(import.meta.dirname, '..', '..', '..', 'test', 'fixtures', 'jamba-tiny');

/** One prefill step of 5 tokens, sampled at its last row; the stand-in's run of it. */
async function recordedStep(rank: number, size: number): Promise<{ program: Float64Array; model: LoadedModel }> {
  const { lib, runs } = standIn();
  const programs: Float64Array[] = [];
  const run = lib.run;
  lib.run = (program, length, ...rest) => {
    programs.push(program.slice(0, length));
    return run(program, length, ...rest);
  };
  const backend = CudaBackend.over(lib, { shard: { rank, size } });
  const model = await loadModelOn(backend, FIXTURE, { quantization: 'none', backend: 'cuda', maxModelLen: 64, maxNumSeqs: 2, kvNumBlocks: 8, maxNumBatchedTokens: 16 });
  model.runner.resetStateSlot(0);
  await model.runner.step([{ tokens: Int32Array.of(1, 5, 900, 17, 600), cachedLen: 0, stateSlot: 0, blockTable: Int32Array.of(0, 1), sample: { temperature: 0, topP: 1, topK: 0, minP: 0, seed: 0, counter: 0, logprobs: 0 } }]);
  expect(runs.length).toBeGreaterThan(0);
  return { program: programs[programs.length - 1]!, model };
}

/** The arguments of each op with this code, in order. */
function argsOf(program: Float64Array, code: number): number[][] {
  const out: number[][] = [];
  for (let at = 0; at < program.length; at += 2 + program[at + 1]!) if (program[at] === code) out.push([...program.subarray(at + 2, at + 2 + program[at + 1]!)]);
  return out;
}

test('a rank of 2 records an all-reduce after the embedding and every row-parallel layer, and gathers the logits', async () => {
  const { program, model } = await recordedStep(1, 2);
  const cfg = parseJambaConfig(readFileSync(join(FIXTURE, 'config.json'), 'utf8'));
  const layers = Array.from({ length: cfg.numHiddenLayers }, (_, i) => layerMixer(cfg, i));
  // Attention: o_proj. Mamba: x_proj and out_proj. Every layer: its MLP or MoE's down projection.
  const expected = 1 + layers.reduce((n, kind) => n + (kind === 'attention' ? 1 : 2) + 1, 0);
  const codes = opCodes(program);
  expect(codes.filter((c) => c === OP.ALL_REDUCE)).toHaveLength(expected);
  expect(codes.filter((c) => c === OP.ALL_GATHER)).toHaveLength(1);
  expect(codes.indexOf(OP.ALL_GATHER)).toBeLessThan(codes.indexOf(OP.SAMPLE));
  // Rank 1 of 2 embeds ids [vocab/2, vocab): its EMBED op's vocabulary and first id.
  const [embed] = argsOf(program, OP.EMBED);
  expect(embed![2]).toBe(cfg.vocabSize / 2);
  expect(embed![embed!.length - 1]).toBe(cfg.vocabSize / 2);
  // The gather widens [1, vocab/2] to [1, vocab].
  const [gather] = argsOf(program, OP.ALL_GATHER);
  expect(gather!.slice(2, 4)).toEqual([1, cfg.vocabSize / 2]);
  model.runner.dispose();
});

test('the whole model records no collective', async () => {
  const { program, model } = await recordedStep(0, 1);
  const codes = opCodes(program);
  expect(codes.filter((c) => c === OP.ALL_REDUCE || c === OP.ALL_GATHER)).toEqual([]);
  expect(argsOf(program, OP.EMBED)[0]!.at(-1)).toBe(0);
  model.runner.dispose();
});

test('ranks map to devices: one each by default, JAMBA_TP_DEVICES to share, clear errors otherwise', () => {
  expect(rankDevices(4, 8, undefined)).toEqual([0, 1, 2, 3]);
  expect(rankDevices(2, 1, '0,0')).toEqual([0, 0]);
  expect(() => rankDevices(8, 1, undefined)).toThrow('tensor parallel size 8 needs 8 GPUs, but 1 is visible; give the pod as many GPUs as --tensor-parallel-size, or lower it');
  expect(() => rankDevices(2, 1, '0')).toThrow('JAMBA_TP_DEVICES=0: give 2 device ordinals, one per rank (for example 0,1)');
  expect(() => rankDevices(2, 2, '0,2')).toThrow('needs devices 0, 2, but 2 are visible');
});
