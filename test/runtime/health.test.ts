// /health is the liveness probe: it must turn 503 when the engine stops working (steps failing,
// or a step that never returns), so Kubernetes restarts the pod. Faults come from the runtime's own
// --fault-injection switch, which wraps the real model.
import type { FaultSpec } from '../../runtime/engine/fault-injection.js';
import { metricValue, postJson, startTestRuntime, waitFor } from './helpers.js';

const request = { prompt: 'The cat', max_tokens: 4, temperature: 0 };

async function health(url: string): Promise<{ status: number; body: { status: string; reason?: string } }> {
  const res = await fetch(`${url}/health`);
  return { status: res.status, body: (await res.json()) as { status: string; reason?: string } };
}

test('failing steps: each request gets a 5xx, failures are counted, and after three in a row /health is 503 and new work is refused', async () => {
  const faultInjection: FaultSpec = { kind: 'step-error', after: 2 };
  const runtime = await startTestRuntime({ faultInjection });
  try {
    // Two good steps: one 2-token request succeeds.
    const ok = await postJson(runtime, '/v1/completions', { ...request, max_tokens: 2 });
    expect(ok.status).toBe(200);
    expect((await health(runtime.url)).status).toBe(200);
    for (let i = 1; i <= 3; i++) {
      const failed = await postJson(runtime, '/v1/completions', request);
      expect(failed.status).toBeGreaterThanOrEqual(500);
      expect(failed.body.error.message).toContain('injected fault');
      expect(await metricValue(runtime, 'jamba_request_failure_total')).toBe(i);
      expect((await health(runtime.url)).status).toBe(i < 3 ? 200 : 503);
    }
    const h = await health(runtime.url);
    expect(h.body).toMatchObject({ status: 'unhealthy' });
    expect(h.body.reason).toContain('3 model steps failed in a row');
    const refused = await postJson(runtime, '/v1/completions', request);
    expect(refused.status).toBe(503);
    expect(refused.body.error.message).toContain('stopped after repeated failures');
  } finally {
    await runtime.close();
  }
}, 60000);

test('a step that never returns turns /health 503 after the stall timeout', async () => {
  const runtime = await startTestRuntime({ faultInjection: { kind: 'step-hang', after: 0 }, stepStallSeconds: 1 });
  try {
    expect((await health(runtime.url)).status).toBe(200);
    const controller = new AbortController();
    const pending = fetch(`${runtime.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request),
      signal: controller.signal,
    }).catch(() => undefined);
    await waitFor('/health to report the stalled step', async () => (await health(runtime.url)).status === 503, 10000);
    expect((await health(runtime.url)).body.reason).toContain('running for more than 1 s');
    controller.abort();
    await pending;
  } finally {
    await runtime.close().catch(() => undefined);
  }
}, 60000);
