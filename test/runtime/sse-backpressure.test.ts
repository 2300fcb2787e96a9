// SSE backpressure over real sockets on loopback. A client that stops reading must not make the
// server buffer the rest of the stream: send() waits while the socket is full, so what the server
// holds stays near one stream buffer; a reader that takes nothing for the stall timeout is cut off,
// and through the runtime its request is cancelled and its KV blocks and state slot freed.
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { SseWriter } from '../../runtime/server/http-io.js';
import type { Runtime } from '../../runtime/server/runtime.js';
import { metricValue, startTestRuntime, waitFor } from './helpers.js';

const EVENT = { text: 'x'.repeat(64 * 1024) }; // 64 KiB per event

/** A server whose one route streams `events` events through SseWriter, recording what it held. */
async function streamingServer(events: number, stallTimeoutMs: number) {
  const state = { sent: 0, maxBuffered: 0, finished: false, closed: false };
  let response: ServerResponse | undefined;
  const server: Server = createServer((_req, res) => {
    response = res;
    const sse = new SseWriter(res, stallTimeoutMs);
    sse.open();
    void (async () => {
      for (let i = 0; i < events && !sse.closed; i++) {
        await sse.send(EVENT);
        state.sent = i + 1;
        state.maxBuffered = Math.max(state.maxBuffered, res.writableLength);
      }
      await sse.done();
      state.finished = true;
    })();
    res.on('close', () => (state.closed = true));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { server, port, state, response: () => response };
}

/** A raw client that sends the request, then reads only when told to. */
function pausedClient(port: number, path: string, body = ''): Promise<Socket> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(`POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      socket.pause();
      resolve(socket);
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a paused reader stops the writer instead of growing its buffer; resuming delivers everything', async () => {
  const events = 400; // 25 MiB: far more than the kernel's socket buffers on loopback
  const s = await streamingServer(events, 30_000);
  const socket = await pausedClient(s.port, '/');
  await sleep(1500);
  const sentWhilePaused = s.state.sent;
  expect(sentWhilePaused).toBeLessThan(events / 2);
  expect(s.state.finished).toBe(false);
  // What the response holds in user space stays within one event plus the stream's high-water mark.
  expect(s.state.maxBuffered).toBeLessThanOrEqual(EVENT.text.length + 1024 + s.response()!.writableHighWaterMark);
  let received = 0;
  socket.on('data', (c: Buffer) => (received += c.length));
  socket.resume();
  await waitFor('the whole stream to arrive', () => s.state.finished, 20_000);
  expect(s.state.sent).toBe(events);
  await waitFor('the client to read it all', () => received >= events * EVENT.text.length);
  socket.destroy();
  s.server.closeAllConnections();
  s.server.close();
}, 30_000);

test('a reader that takes nothing for the stall timeout is cut off', async () => {
  const s = await streamingServer(400, 300);
  const socket = await pausedClient(s.port, '/');
  await waitFor('the stalled stream to be closed', () => s.state.closed, 10_000);
  expect(s.state.finished).toBe(true);
  expect(s.state.sent).toBeLessThan(400);
  socket.destroy();
  s.server.close();
});

describe('through the runtime', () => {
  let runtime: Runtime;
  beforeAll(async () => {
    runtime = await startTestRuntime({ fixture: 'jamba-tiny', maxModelLen: 1024 });
  }, 120_000);
  afterAll(async () => {
    await runtime?.close();
  });

  test('a stream paused by its reader and resumed arrives whole and in order, and frees its state', async () => {
    const body = JSON.stringify({ prompt: 'The cat', max_tokens: 600, ignore_eos: true, stream: true, logprobs: 5, return_tokens_as_token_ids: true });
    const { port } = new URL(runtime.url);
    const socket = await pausedClient(Number(port), '/v1/completions', body);
    await sleep(1000);
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => (text += c));
    socket.resume();
    await waitFor('[DONE]', () => text.includes('data: [DONE]'), 60_000);
    const events = text.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)));
    const tokens = events.flatMap((e) => e.choices[0]?.logprobs?.tokens ?? []);
    expect(tokens).toHaveLength(600);
    expect(events.at(-1).choices[0].finish_reason).toBe('length');
    socket.destroy();
    await waitFor('state freed', async () => (await metricValue(runtime, 'jamba_mamba_state_slots_in_use')) === 0 && (await metricValue(runtime, 'jamba_kv_cache_usage_ratio')) === 0);
  }, 90_000);
});
