// The MoE split benchmark's bookkeeping on the stand-in library (CI has no GPU; `bench --ops moe-parallel`
// times it on one): every rank count and token count gives a row for each layout, and under expert
// parallelism each (token, slot) pair is run by exactly one rank, renumbered into that rank's experts.
import { SKIPPED_EXPERT, type Tensor } from '../backends/backend.js';
import { CudaBackend } from '../backends/cuda/index.js';
import { standIn } from '../backends/cuda/stand-in.js';
import { benchRouting, OpBench } from './op-bench.js';

test('moe-parallel: rows for both layouts, and the ranks of expert parallelism partition the routed pairs', async () => {
  const b = CudaBackend.over(standIn().lib);
  const uploads: Int32Array[] = [];
  const upload = b.upload.bind(b);
  b.upload = (data: Float32Array | Int32Array, shape: number[]): Tensor => {
    if (data instanceof Int32Array) uploads.push(data.slice());
    return upload(data, shape);
  };
  const lines: string[] = [];
  const shape = { name: 'test', hidden: 64, ffn: 256, experts: 8 };
  const rows = await new OpBench(b, (l) => lines.push(l)).moeParallel(shape, [2, 4], [1, 5]);

  expect(rows.map((r) => `${r.op} @ ${r.shape}`)).toEqual(
    [2, 4].flatMap((ranks) => [1, 5].flatMap((n) => ['moe ffn split', 'moe expert parallel (slowest rank)'].map((op) => `${op} @ test, ${ranks} ranks, ${n} tokens`))),
  );
  expect(lines).toHaveLength(4);
  // Per (ranks, tokens): the global routing (the ffn split's), then one upload per rank.
  let at = 0;
  for (const ranks of [2, 4]) {
    for (const n of [1, 5]) {
      const global = benchRouting(n, shape.experts);
      expect(uploads[at++]).toEqual(global);
      const perExpert = shape.experts / ranks;
      const runBy = new Int32Array(global.length).fill(-1);
      for (let rank = 0; rank < ranks; rank++) {
        const local = uploads[at++]!;
        local.forEach((e, i) => {
          if (e === SKIPPED_EXPERT) return;
          expect(e).toBeLessThan(perExpert);
          expect(rank * perExpert + e).toBe(global[i]);
          expect(runBy[i]).toBe(-1);
          runBy[i] = rank;
        });
      }
      expect([...runBy].every((rank) => rank >= 0)).toBe(true);
    }
  }
  expect(at).toBe(uploads.length);
  b.dispose();
});
