// BodyClient: bodies read into the sink's buffers (Content-Length bodies straight, chunked ones
// decoded), connections kept alive and reused, a cut or a silent server failing the request with a
// retryable error, and close() letting requests in flight finish while refusing new ones.
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { BodyClient, type BodySink } from '../../runtime/download/body-client.js';
import { isRetryableNetworkError } from '../../runtime/download/http.js';
import { listenInTestRange } from '../harness/listen.js';

const BODY = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 251));
let server: Server;
let base: string;
const sockets = new Set<Socket>();
let requestsPerSocket: number[] = [];
const slow: ServerResponse[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const socket = req.socket as Socket & { served?: number };
    socket.served = (socket.served ?? 0) + 1;
    if (socket.served === 1) requestsPerSocket.push(0);
    requestsPerSocket[requestsPerSocket.length - 1] = socket.served;
    if (req.url === '/length') {
      res.writeHead(200, { 'content-length': String(BODY.length) });
      res.end(BODY);
    } else if (req.url === '/chunked') {
      res.writeHead(200); // no length: Node sends it chunked
      for (let off = 0; off < BODY.length; off += 7000) res.write(BODY.subarray(off, off + 7000));
      res.end();
    } else if (req.url === '/then-close') {
      res.writeHead(200, { 'content-length': String(BODY.length) });
      res.end(BODY, () => setTimeout(() => req.socket.destroy(), 10)); // a keep-alive connection closed while idle
    } else if (req.url === '/cut') {
      res.writeHead(200, { 'content-length': String(BODY.length) });
      res.write(BODY.subarray(0, 1000), () => req.socket.destroy());
    } else if (req.url === '/silent') {
      res.writeHead(200, { 'content-length': '10' });
      res.write('01234');
    } else if (req.url === '/big-head') {
      res.writeHead(200, { 'content-length': '2', 'x-padding': 'p'.repeat(20_000) });
      res.end('ok');
    } else if (req.url === '/slow') {
      slow.push(res);
      res.writeHead(200, { 'content-length': '4' });
      res.write('ab');
    } else {
      res.writeHead(204);
      res.end();
    }
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  base = await listenInTestRange(server);
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => server.close(resolve));
});

/** Collects a body through a small buffer, so that it takes many reads. */
function collect(size = 4096): BodySink & { body(): Buffer } {
  const scratch = Buffer.alloc(size);
  const parts: Buffer[] = [];
  return { space: () => scratch, filled: (n) => void parts.push(Buffer.from(scratch.subarray(0, n))), body: () => Buffer.concat(parts) };
}

function client(idleTimeoutMs = 5000): BodyClient {
  return new BodyClient({ idleTimeoutMs, keepAliveMs: 5000, maxIdlePerOrigin: 2 });
}

test('Content-Length and chunked bodies arrive whole, over one kept-alive connection', async () => {
  requestsPerSocket = [];
  const c = client();
  for (const path of ['/length', '/chunked', '/length', '/empty']) {
    const sink = collect();
    const answer = await c.get(new URL(`${base}${path}`), { range: 'bytes=0-' }, () => sink);
    expect(answer.statusCode).toBe(path === '/empty' ? 204 : 200);
    expect(sink.body().equals(path === '/empty' ? Buffer.alloc(0) : BODY)).toBe(true);
  }
  await c.close();
  expect(requestsPerSocket).toEqual([4]);
});

test('a connection cut inside a body fails the request with a retryable error, and the next request gets a new connection', async () => {
  const c = client();
  const sink = collect();
  const error = await c.get(new URL(`${base}/cut`), {}, () => sink).catch((e: unknown) => e);
  expect(isRetryableNetworkError(error)).toBe(true);
  expect(sink.body().length).toBeLessThan(BODY.length);
  const again = collect();
  await c.get(new URL(`${base}/length`), {}, () => again);
  expect(again.body().equals(BODY)).toBe(true);
  await c.close();
});

test('a kept-alive connection the server closes while idle is not reused, even if the receiver paused it at the end', async () => {
  requestsPerSocket = [];
  const c = client();
  const scratch = Buffer.alloc(4096);
  let received = 0;
  await c.get(new URL(`${base}/then-close`), {}, (_status, _headers, controller) => ({
    space: () => scratch,
    filled: (n) => {
      received += n;
      if (received === BODY.length) controller.pause(); // as ChunkWriter does when the disk lags
    },
  }));
  await new Promise((resolve) => setTimeout(resolve, 100));
  const again = collect();
  await c.get(new URL(`${base}/length`), {}, () => again);
  expect(again.body().equals(BODY)).toBe(true);
  expect(requestsPerSocket).toEqual([1, 1]);
  await c.close();
});

test('a server silent for the idle timeout fails the request with a retryable error', async () => {
  const c = client(200);
  const error = await c.get(new URL(`${base}/silent`), {}, () => collect()).catch((e: unknown) => e);
  expect(error).toMatchObject({ code: 'NetworkError', message: expect.stringMatching(/no data for 200 ms/) });
  expect(isRetryableNetworkError(error)).toBe(true);
  await c.close();
});

test('a response head over 16 KiB fails the request; a header with a line break is refused before sending', async () => {
  const c = client();
  const error = await c.get(new URL(`${base}/big-head`), {}, () => collect()).catch((e: unknown) => e);
  expect(error).toMatchObject({ code: 'NetworkError', message: expect.stringMatching(/response head over 16384 bytes/) });
  await expect(c.get(new URL(`${base}/length`), { 'x-injected': 'a\r\nhost: elsewhere' }, () => collect())).rejects.toThrow(/invalid header x-injected/);
  const again = collect();
  await c.get(new URL(`${base}/length`), {}, () => again);
  expect(again.body().equals(BODY)).toBe(true);
  await c.close();
});

test('a sink that throws on the head fails the request with its error', async () => {
  const c = client();
  const refusal = new Error('refused');
  await expect(c.get(new URL(`${base}/length`), {}, () => { throw refusal; })).rejects.toBe(refusal);
  await c.close();
});

test('close() lets a request in flight finish and refuses new ones', async () => {
  const c = client();
  const sink = collect();
  slow.length = 0;
  const inFlight = c.get(new URL(`${base}/slow`), {}, () => sink);
  while (slow.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  const closed = c.close();
  await expect(c.get(new URL(`${base}/length`), {}, () => collect())).rejects.toThrow(/closed/);
  slow[0]!.end('cd');
  await expect(inFlight).resolves.toMatchObject({ statusCode: 200 });
  await closed;
  expect(sink.body().toString()).toBe('abcd');
});
