// Tracing of a real `jamba-runtime serve` process, configured only by the standard OTEL_* variables,
// exporting OTLP/HTTP protobuf to a real receiver on loopback (otlp-sink, an independent decoder):
// one SERVER span per generation request, named and attributed per the GenAI semantic conventions,
// continuing the caller's W3C trace, with queue → prefill → decode children inside it.
import { randomBytes } from 'node:crypto';
import { OtlpSink, type ReceivedSpan } from '../monitoring/otlp-sink.js';
import { loadReference, postJson, spawnServe, type ServeProcess } from './helpers.js';

const c = loadReference('jamba-tiny').cases[0]!;
let sink: OtlpSink;
let serve: ServeProcess | undefined;
const traceId = randomBytes(16).toString('hex');
const callerSpanId = randomBytes(8).toString('hex');
let completion: { id: string; usage: { prompt_tokens: number; completion_tokens: number } };

beforeAll(async () => {
  sink = await OtlpSink.start();
  serve = await spawnServe(['--served-model-name', 'jamba-tiny'], {
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_BSP_SCHEDULE_DELAY: '50', OTEL_SERVICE_NAME: undefined, OTEL_TRACES_EXPORTER: undefined },
  });
  const reply = await postJson(serve, '/v1/completions', {
    model: 'jamba-tiny', prompt: c.prompt, max_tokens: 5, temperature: 0.5, top_p: 0.9, top_k: 20, seed: 7, stop: ['zzz'], ignore_eos: true,
  }, { headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${callerSpanId}-01` } });
  expect(reply.status).toBe(200);
  completion = reply.body;
  const chat = await fetch(`${serve.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, stream: true }),
  });
  expect(chat.status).toBe(200);
  await chat.text();
  expect((await postJson(serve, '/v1/completions', { prompt: c.prompt, max_tokens: -1 })).status).toBe(400);
  // SIGTERM flushes what is still batched.
  serve.child.kill('SIGTERM');
  expect(await serve.exited).toBe(0);
  await sink.waitFor('three server spans', (spans) => spans.filter((s) => s.kind === 'SPAN_KIND_SERVER').length >= 3);
}, 120_000);

afterAll(async () => {
  serve?.child.kill('SIGKILL');
  await sink?.stop();
});

const server = (name: string, status: number): ReceivedSpan => {
  const found = sink.spans.filter((s) => s.kind === 'SPAN_KIND_SERVER' && s.name === name && s.attributes['http.response.status_code'] === status);
  expect(found).toHaveLength(1);
  return found[0]!;
};
const childrenOf = (span: ReceivedSpan) => sink.spans.filter((s) => s.parentSpanId === span.spanId).sort((a, b) => Number(a.startNs - b.startNs));

test('a completion: "{operation} {model}" server span continuing the caller\'s trace, with the GenAI attributes', () => {
  const span = server('text_completion jamba-tiny', 200);
  expect(span.traceId).toBe(traceId);
  expect(span.parentSpanId).toBe(callerSpanId);
  expect(span.resource['service.name']).toBe('jamba-runtime');
  expect(span.attributes).toMatchObject({
    'gen_ai.operation.name': 'text_completion',
    'gen_ai.request.model': 'jamba-tiny',
    'gen_ai.response.model': 'jamba-tiny',
    'gen_ai.response.id': completion.id,
    'gen_ai.request.max_tokens': 5,
    'gen_ai.request.temperature': 0.5,
    'gen_ai.request.top_p': 0.9,
    'gen_ai.request.top_k': 20,
    'gen_ai.request.seed': 7,
    'gen_ai.request.stop_sequences': ['zzz'],
    'gen_ai.request.stream': false,
    'gen_ai.usage.input_tokens': completion.usage.prompt_tokens,
    'gen_ai.usage.output_tokens': 5,
    'gen_ai.response.finish_reasons': ['length'],
    'http.request.method': 'POST',
    'url.path': '/v1/completions',
  });
  expect(span.attributes['gen_ai.response.time_to_first_chunk']).toBeGreaterThan(0);
  expect(span.status.code ?? 'STATUS_CODE_UNSET').toBe('STATUS_CODE_UNSET');
});

test('its children: queue, prefill and decode, back to back inside the server span', () => {
  const span = server('text_completion jamba-tiny', 200);
  const children = childrenOf(span);
  expect(children.map((s) => s.name)).toEqual(['queue', 'prefill', 'decode']);
  const [queue, prefill, decode] = children as [ReceivedSpan, ReceivedSpan, ReceivedSpan];
  for (const child of children) {
    expect(child.traceId).toBe(traceId);
    expect(child.startNs).toBeGreaterThanOrEqual(span.startNs);
    expect(child.endNs).toBeLessThanOrEqual(span.endNs);
    expect(child.endNs).toBeGreaterThanOrEqual(child.startNs);
  }
  expect(queue.endNs).toBe(prefill.startNs);
  expect(prefill.endNs).toBe(decode.startNs);
  expect(prefill.attributes['gen_ai.usage.input_tokens']).toBe(completion.usage.prompt_tokens);
  expect(decode.attributes['gen_ai.usage.output_tokens']).toBe(5);
  // Four tokens after the first: the decode phase cannot be instantaneous.
  expect(decode.endNs).toBeGreaterThan(decode.startNs);
});

test('a streamed chat completion: a chat span of its own trace, stream recorded', () => {
  const span = server('chat jamba-tiny', 200);
  expect(span.traceId).not.toBe(traceId);
  expect(span.parentSpanId).toBeUndefined();
  expect(span.attributes).toMatchObject({ 'gen_ai.operation.name': 'chat', 'gen_ai.request.stream': true, 'gen_ai.usage.output_tokens': 3, 'gen_ai.request.max_tokens': 3 });
  expect(childrenOf(span).map((s) => s.name)).toEqual(['queue', 'prefill', 'decode']);
});

test('a refused request: the span says 400, is not an error of the server, and has no phases', () => {
  const span = server('text_completion jamba-tiny', 400);
  expect(span.attributes['error.type']).toBe('400');
  expect(span.status.code ?? 'STATUS_CODE_UNSET').toBe('STATUS_CODE_UNSET');
  expect(childrenOf(span)).toEqual([]);
});
