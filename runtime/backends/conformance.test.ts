import type { AttentionShape, ExpertSet, KvCache, LinearWeight, RaggedBatch, Routing, SampleResult, SelectiveScanInputs, MambaState, Tensor } from './backend.js';
import { compareBackends, OP_CASES } from './conformance.js';
import { CpuBackend } from './cpu/index.js';
import type { CpuTensor } from './cpu/tensor.js';

test('the CPU backend conforms to itself exactly (the cases are deterministic)', async () => {
  const results = await compareBackends(new CpuBackend(), new CpuBackend());
  expect(results.slice(0, OP_CASES.length).map((r) => r.name)).toEqual(OP_CASES.map((c) => c.name));
  expect(results.length).toBe(OP_CASES.length + 6); // + sampling ids and logprobs, three draws
  for (const r of results) expect(r).toMatchObject({ ok: true, maxAbsDiff: 0, error: 0 });
});

// Backends with one classic kernel bug each; the harness must flag the case that covers it.
class IgnoresInt8Scale extends CpuBackend {
  override linear(x: Tensor, w: LinearWeight): Tensor {
    return super.linear(x, w.kind === 'int8' ? { ...w, scale: this.upload(new Float32Array(w.weight.shape[0]!).fill(1 / 127), [w.weight.shape[0]!]) } : w);
  }
}
class UnscaledAttention extends CpuBackend {
  override pagedAttention(q: Tensor, k: Tensor, v: Tensor, c: KvCache, batch: RaggedBatch, shape: AttentionShape): Tensor {
    return super.pagedAttention(q, k, v, c, batch, { ...shape, scale: 1 });
  }
}
class RenormalisingRouter extends CpuBackend {
  override routerTopK(logits: Tensor, k: number): Routing {
    const routing = super.routerTopK(logits, k);
    const w = (routing.weights as CpuTensor).data as Float32Array;
    for (let r = 0; r < w.length; r += k) {
      const sum = w.slice(r, r + k).reduce((a, b) => a + b, 0);
      for (let j = 0; j < k; j++) w[r + j]! /= sum;
    }
    return routing;
  }
}
class IgnoresTopP extends CpuBackend {
  override async sample(logits: Tensor): Promise<SampleResult> {
    const step = (this as unknown as { step: { sampling: { topP: number }[] } }).step;
    step.sampling = step.sampling.map((row) => ({ ...row, topP: 1 }));
    return super.sample(logits);
  }
}
class ForgetsScanState extends CpuBackend {
  override selectiveScan(inputs: SelectiveScanInputs, state: MambaState, batch: RaggedBatch): Tensor {
    for (const s of batch.segments) this.resetMambaSlot(state, s.stateSlot); // also wipes the conv state, after its use
    return super.selectiveScan(inputs, state, batch);
  }
}

class RunsSkippedSlots extends CpuBackend {
  override moeExperts(x: Tensor, routing: Routing, experts: ExpertSet): Tensor {
    const ids = (routing.experts as CpuTensor).data as Int32Array;
    return super.moeExperts(x, { ...routing, experts: this.upload(ids.map((e) => Math.max(e, 0)), routing.experts.shape) }, experts);
  }
}

test.each([
  ['int8 scale ignored', new IgnoresInt8Scale(), ['linear (int8', 'denseMlp']],
  ['attention without 1/sqrt(d)', new UnscaledAttention(), 'pagedAttention', ['pagedAttention (GQA, two', 'pagedAttention (GQA, thirteen']],
  ['router renormalises top-k', new RenormalisingRouter(), ['routerTopK', 'moeExperts']],
  ['scan state reset every step', new ForgetsScanState(), ['mambaConv + selectiveScan', 'Mamba mixer'], ['mambaConv + selectiveScan (two', 'mambaConv + selectiveScan (thirteen']],
  ['top-p ignored', new IgnoresTopP(), 'sample'],
  ['slots of experts held elsewhere run as expert 0', new RunsSkippedSlots(), 'moeExperts, one rank', ['moeExperts, one rank']],
])('a backend with a bug is caught: %s', async (_bug, broken, failingCases, mustFail: string[] = []) => {
  const results = await compareBackends(broken, new CpuBackend());
  const failed = results.filter((r) => !r.ok).map((r) => r.name);
  expect(failed.length).toBeGreaterThan(0);
  const expected = typeof failingCases === 'string' ? [failingCases] : failingCases;
  expect(failed.filter((name) => !expected.some((prefix) => name.startsWith(prefix)))).toEqual([]);
  for (const prefix of mustFail) expect(failed.some((name) => name.startsWith(prefix))).toBe(true);
  for (const r of results) expect(Number.isFinite(r.error) || !r.ok).toBe(true);
});
