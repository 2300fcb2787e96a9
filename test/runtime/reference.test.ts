// The runtime reproduces the Hugging Face reference (tools/fixtures) through the HTTP API:
// identical greedy tokens and log-probabilities within 1e-3, for bf16 checkpoints computed in fp32
// (--quantization none) and for ExpertsInt8 against the quantize-then-dequantize reference.
import type { Quantization } from '../../runtime/engine/model-runner.js';
import type { Runtime } from '../../runtime/server/runtime.js';
import { FIXTURE_NAMES, loadReference, postJson, startTestRuntime } from './helpers.js';
import { expectMatchesReference, referenceRequest } from './reference-check.js';

const runs: Array<[(typeof FIXTURE_NAMES)[number], Quantization, 'bf16' | 'expertsint8']> = [];
for (const fixture of FIXTURE_NAMES) {
  runs.push([fixture, 'none', 'bf16'], [fixture, 'expertsint8', 'expertsint8']);
}

describe.each(runs)('%s with --quantization %s', (fixture, quantization, refKey) => {
  let runtime: Runtime;
  const reference = loadReference(fixture);

  beforeAll(async () => {
    runtime = await startTestRuntime({ fixture, quantization });
  }, 120000);
  afterAll(async () => {
    await runtime?.close();
  });

  test.each(reference.cases.map((c) => [c.name, c] as const))(`case %s matches the ${refKey} reference`, async (_name, c) => {
    const { status, body } = await postJson(runtime, '/v1/completions', referenceRequest(c, { model: runtime.servedModelName }));
    expect(status).toBe(200);
    expectMatchesReference(`${fixture}/${c.name}`, body.choices[0], body.usage, c, c[refKey]);
  }, 120000);
});
