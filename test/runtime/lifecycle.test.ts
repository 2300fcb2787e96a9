// The serving lifecycle: probes while loading, readiness, draining in-process, and SIGTERM on a
// real `jamba-runtime serve` process (built to dist/ by `make test` before jest runs).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { LoadOptions } from '../../runtime/engine/model-runner.js';
import { cudaAvailable } from '../../runtime/backends/create.js';
import { loadModel } from '../../runtime/models/index.js';
import { silentLogger } from '../../runtime/server/log.js';
import { RUNTIME_DEFAULTS, startRuntime } from '../../runtime/server/runtime.js';
import { RUNTIME_MAIN as MAIN, fixtureDir, loadReference, metricValue, postJson, postSse, spawnServe, startTestRuntime } from './helpers.js';

const c = loadReference('jamba-tiny').cases[0]!;

test('while loading: /health 200, /ready 503 with progress, generation 503 with Retry-After; then ready', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const runtime = await startRuntime({
    ...RUNTIME_DEFAULTS,
    modelDir: fixtureDir('jamba-tiny'),
    port: 0,
    log: silentLogger,
    // The real loader, held back until the test has looked at the loading state.
    loadModel: async (dir: string, opts: LoadOptions) => {
      await gate;
      return loadModel(dir, opts);
    },
  });
  try {
    expect((await fetch(`${runtime.url}/health`)).status).toBe(200);
    const ready = await fetch(`${runtime.url}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'loading', load: { ratio: 0 } });
    expect(await metricValue(runtime, 'jamba_model_load_progress_ratio')).toBe(0);
    const early = await postJson(runtime, '/v1/completions', { prompt: 'x', max_tokens: 1 });
    expect(early.status).toBe(503);
    expect(early.headers.get('retry-after')).not.toBeNull();
    expect(early.body.error.code).toBe('model_loading');

    release();
    await runtime.ready;
    const after = await fetch(`${runtime.url}/ready`);
    expect(after.status).toBe(200);
    expect(await after.json()).toMatchObject({ status: 'ready', load: { ratio: 1 } });
    expect(await metricValue(runtime, 'jamba_model_load_progress_ratio')).toBe(1);
    expect(await metricValue(runtime, 'jamba_mamba_state_slots_total')).toBeGreaterThan(0);
  } finally {
    release();
    await runtime.close();
  }
}, 60000);

test('a checkpoint that fails to load leaves /ready 503 with the reason', async () => {
  const runtime = await startRuntime({ ...RUNTIME_DEFAULTS, modelDir: '/nonexistent/model', port: 0, log: silentLogger, loadModel });
  try {
    await expect(runtime.ready).rejects.toThrow();
    const ready = await fetch(`${runtime.url}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'failed', error: expect.stringContaining('/nonexistent/model') });
  } finally {
    await runtime.close();
  }
});

test('drain: /ready turns 503, new requests get 503, the request in flight finishes', async () => {
  const runtime = await startTestRuntime({ fixture: 'jamba-tiny' });
  try {
    const inflight = postSse(runtime, '/v1/completions', { prompt: c.prompt, max_tokens: 40, temperature: 0, ignore_eos: true, stream: true });
    await new Promise((r) => setTimeout(r, 50));
    const drained = runtime.drain(30000);
    expect((await fetch(`${runtime.url}/ready`)).status).toBe(503);
    const refused = await postJson(runtime, '/v1/completions', { prompt: 'x', max_tokens: 1 });
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('draining');
    const stream = await inflight;
    expect(stream.done).toBe(true);
    expect(stream.events.at(-1).choices[0].finish_reason).toBe('length');
    expect(await drained).toBe(true);
  } finally {
    await runtime.close();
  }
}, 60000);

test('SIGTERM on `jamba-runtime serve`: in-flight stream completes, /ready 503, exit 0', async () => {
  const serve = await spawnServe(['--drain-timeout', '30']);
  try {
    const res = await fetch(`${serve.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: c.prompt, max_tokens: 400, temperature: 0, ignore_eos: true, stream: true }),
    });
    const reader = res.body!.getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    serve.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 50));
    expect((await fetch(`${serve.url}/ready`)).status).toBe(503);
    expect((await postJson({ url: serve.url }, '/v1/completions', { prompt: 'x', max_tokens: 1 })).status).toBe(503);
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += new TextDecoder().decode(chunk.value);
    expect(text.trim().endsWith('data: [DONE]')).toBe(true);
    expect(text).toContain('"finish_reason":"length"');
    expect(await serve.exited).toBe(0);
  } finally {
    serve.child.kill('SIGKILL');
  }
}, 120000);

test('SIGTERM with a drain timeout shorter than the request: it is cut, and the process still exits 0', async () => {
  const serve = await spawnServe(['--drain-timeout', '1', '--max-model-len', '4096']);
  try {
    const res = await fetch(`${serve.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: c.prompt, max_tokens: 4000, temperature: 0, ignore_eos: true, stream: true }),
    });
    const reader = res.body!.getReader();
    await reader.read();
    const started = Date.now();
    serve.child.kill('SIGTERM');
    let text = '';
    try {
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += new TextDecoder().decode(chunk.value);
    } catch {
      // the connection may close under the reader
    }
    expect(await serve.exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(15000);
    expect(text).not.toContain('"finish_reason":"length"');
  } finally {
    serve.child.kill('SIGKILL');
  }
}, 120000);

test('the CLI explains bad flags and unavailable backends', async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first (\`make test\` does)`);
  const run = (args: string[]) =>
    new Promise<{ code: number | null; out: string; err: string }>((r) => {
      const child = spawn(process.execPath, [MAIN, ...args]);
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('exit', (code) => r({ code, out, err }));
    });
  const help = await run(['serve', '--help']);
  expect(help.code).toBe(0);
  expect(help.out).toContain('--max-num-seqs');
  const unknown = await run(['serve', '--model', 'x', '--bogus']);
  expect(unknown.code).toBe(2);
  expect(unknown.err).toContain('--bogus');
  // Flags the operator passes are accepted; what the machine or backend cannot do fails the load
  // (exit 1, the reason in the log) instead of the argument parser.
  const model = fixtureDir('jamba-tiny');
  const tp = await run(['serve', '--model', model, '--port', '0', '--backend', 'cpu', '--tensor-parallel-size', '8']);
  expect(tp.code).toBe(1);
  expect(tp.out).toContain("tensor parallel size 8 does not divide the model's attention heads (4)");
  if (!(await cudaAvailable()).ok) {
    const cuda = await run(['serve', '--model', model, '--port', '0', '--backend', 'cuda']);
    expect(cuda.code).toBe(1);
    expect(cuda.out).toContain('model load failed');
  }
  const quant = await run(['serve', '--model', 'x', '--quantization', 'fp8']);
  expect(quant.err).toContain("--quantization must be 'none' or 'expertsint8'");
  const port = await run(['serve', '--model', 'x', '--port', 'eighty']);
  expect(port.err).toContain('--port must be an integer');
}, 60000);
