// The runtime's HTTP API under fuzzed input (tools/fuzz/http-fuzz.ts), bounded to seconds: no crash
// (no 5xx but 503, no unhandled error), no hang, every error in OpenAI's shape with a status the API
// uses, every engine resource freed, and the heap back to its baseline. A fixed seed keeps CI
// reproducible; FUZZ_SEED picks another (`make bench-fuzz` runs thousands of cases).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createServer, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import type { Runtime } from '../../runtime/server/runtime.js';
import { readBody } from '../../runtime/server/http-io.js';
import { ApiError } from '../../runtime/server/errors.js';
import {
  connectionStorm, exchange, fuzzJsonBodies, fuzzRawRequests, fuzzTruncatedUploads, newReport, request, type FuzzReport, type FuzzTarget,
} from '../../tools/fuzz/http-fuzz.js';
import { metricValue, postJson, startTestRuntime, waitFor } from './helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
function heapAfterGc(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

const SEED = Number(process.env['FUZZ_SEED'] ?? 20261202);
let runtime: Runtime;
let target: FuzzTarget;
let baselineHeap = 0;

beforeAll(async () => {
  runtime = await startTestRuntime({ fixture: 'jamba-tiny', maxModelLen: 1024, maxNumSeqs: 8, maxBodyBytes: 1024 * 1024 });
  const url = new URL(runtime.url);
  target = { host: url.hostname, port: Number(url.port), model: runtime.servedModelName };
  // Warm every path once (JIT, tokenizer, chat template) before the baseline.
  for (const stream of [false, true]) {
    await postJson(runtime, '/v1/completions', { prompt: 'warm up', max_tokens: 2, stream });
    await postJson(runtime, '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, stream });
  }
  await postJson(runtime, '/v1/completions', '{');
  baselineHeap = heapAfterGc();
}, 120_000);

afterAll(async () => {
  await runtime?.close();
});

/** Nothing running or waiting, every KV block and state slot back, and the server still answers. */
async function expectHealthyAndIdle(): Promise<void> {
  await waitFor('all requests to end and their state to be freed', async () =>
    (await metricValue(runtime, 'jamba_requests_running')) === 0 &&
    (await metricValue(runtime, 'jamba_requests_waiting')) === 0 &&
    (await metricValue(runtime, 'jamba_kv_cache_usage_ratio')) === 0 &&
    (await metricValue(runtime, 'jamba_mamba_state_slots_in_use')) === 0, 30_000);
  expect(runtime.engine!.stats().kvBlocksUsed).toBe(0);
  const ok = await postJson(runtime, '/v1/completions', { prompt: 'The cat', max_tokens: 3 });
  expect(ok.status).toBe(200);
  expect(ok.body.choices[0].text.length).toBeGreaterThan(0);
}

function expectClean(report: FuzzReport, minCases: number): void {
  process.stdout.write(`fuzz: ${report.cases} cases, statuses ${JSON.stringify(report.statuses)}\n`);
  expect(report.failures).toEqual([]);
  expect({ crashes: report.crashes, hangs: report.hangs, badAnswers: report.badAnswers }).toEqual({ crashes: 0, hangs: 0, badAnswers: 0 });
  expect(report.cases).toBeGreaterThanOrEqual(minCases);
}

// Bounded by count; the time budget only guards against a machine so slow the count cannot be reached.
const opts = { seed: SEED, runs: 80, deadlineMs: 20_000, timeBudgetMs: 240_000 };

test('fuzzed JSON bodies of both endpoints: 200s of the right shape or OpenAI errors', async () => {
  const report = newReport();
  await fuzzJsonBodies(target, opts, report);
  expectClean(report, 2 * opts.runs);
  await expectHealthyAndIdle();
}, 300_000);

test('raw bodies (bytes, invalid UTF-8, cut JSON, deep nesting), wrong methods, paths and content types', async () => {
  const report = newReport();
  await fuzzRawRequests(target, opts, report);
  expectClean(report, opts.runs);
  await expectHealthyAndIdle();
}, 120_000);

test('uploads cut short or dribbled in (slow-loris), then abandoned', async () => {
  const report = newReport();
  await fuzzTruncatedUploads(target, { ...opts, runs: 100 }, report);
  expectClean(report, 100);
  await expectHealthyAndIdle();
}, 120_000);

test('200 slow-loris uploads held open do not keep others from being served', async () => {
  const held = Array.from({ length: 200 }, () =>
    exchange(target, [`POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"pro`], { deadlineMs: 4000 }));
  await new Promise((r) => setTimeout(r, 300));
  const started = Date.now();
  const ok = await postJson(runtime, '/v1/completions', { prompt: 'The cat', max_tokens: 3 });
  expect(ok.status).toBe(200);
  expect(Date.now() - started).toBeLessThan(3000);
  await Promise.all(held); // our side gives up after 4 s
  await expectHealthyAndIdle();
}, 60_000);

test('1000 concurrent connections closed at random moments: nothing leaks, the heap returns to baseline', async () => {
  const report = newReport();
  await connectionStorm(target, { seed: SEED, connections: 1000, concurrency: 500, deadlineMs: 60_000 }, report);
  expectClean(report, 1000);
  await expectHealthyAndIdle();
  // The heap after every phase of this file, against the warmed-up baseline.
  const grewMiB = (heapAfterGc() - baselineHeap) / 2 ** 20;
  expect(grewMiB).toBeLessThan(8);
}, 180_000);

/**
 * A client that uploads in two parts with a pause between them and reads only at the end (a busy
 * client): what the server answered must still be there to read.
 */
function slowUpload(method: string, path: string, body: string): Promise<{ status?: number; text: string; error?: string }> {
  return new Promise((resolve) => {
    const payload = Buffer.from(body);
    const socket = connect(target.port, target.host, () => {
      socket.pause();
      socket.write(`${method} ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${payload.length}\r\n\r\n`);
      socket.write(payload.subarray(0, 1000));
      setTimeout(() => {
        socket.write(payload.subarray(1000), () => undefined);
        setTimeout(() => {
          let text = '';
          socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
          const done = (error?: string) => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]) || undefined, text, error });
          socket.on('end', () => done());
          socket.on('error', (e) => done(e.message));
          socket.end();
          socket.resume();
        }, 300);
      }, 300);
    });
  });
}

// The fuzzer saw 4 answers in 1000 lost this way under heavy load (answered before the body was read,
// then the connection closed); this replays the shape of those cases as a regression check.
test('a body on a route that refuses it: the answer survives a client that reads late', async () => {
  const body = JSON.stringify({ prompt: 'x'.repeat(200_000) });
  for (const [method, path, status] of [['POST', '/nope', 404], ['DELETE', '/health', 405], ['PUT', '/v1/completions', 405], ['GET', '/health', 200]] as const) {
    const answer = await slowUpload(method, path, body);
    expect({ path, status: answer.status, error: answer.error }).toEqual({ path, status, error: undefined });
  }
  await expectHealthyAndIdle();
});

test('a body that does not arrive in time gets 408 in OpenAI shape', async () => {
  let caught: unknown;
  const server = createServer((req: IncomingMessage, res) => {
    readBody(req, 1024, 200).then(() => res.end('read'), (e: unknown) => {
      caught = e;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const t: FuzzTarget = { host: '127.0.0.1', port: (server.address() as AddressInfo).port, model: 'x' };
  const [head, body] = request(t, 'POST', '/', '{"prompt":"abc"}');
  await exchange(t, [head!, body!.subarray(0, 5)], { deadlineMs: 2000 });
  expect(caught).toBeInstanceOf(ApiError);
  expect((caught as ApiError).status).toBe(408);
  expect((caught as ApiError).body().error.code).toBe('request_timeout');
  server.close();
});
