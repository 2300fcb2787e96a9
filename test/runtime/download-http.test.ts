// HubHttp.receive: a body read into the receiver's buffers (body-client.ts), redirects followed (the
// Range header kept, the token only for the first origin), other answers returned with their text.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEFAULT_RETRY, failureOf, HubHttp, RetryableStatus, type BodyReceiver } from '../../runtime/download/http.js';
import { listenInTestRange } from '../harness/listen.js';

let server: Server;
let base: string;
const seen: IncomingMessage['headers'][] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(req.headers);
    if (req.url === '/redirect') {
      res.writeHead(302, { location: `http://localhost:${(server.address() as AddressInfo).port}/data` });
      res.end();
    } else if (req.url === '/data') {
      res.writeHead(206, { 'content-range': 'bytes 0-9/10' });
      res.end('0123456789');
    } else {
      res.writeHead(404, { 'x-error-code': 'EntryNotFound' });
      res.end('no such file');
    }
  });
  base = await listenInTestRange(server);
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

function http(): HubHttp {
  return new HubHttp({ token: 'hf_secret', retry: DEFAULT_RETRY, idleTimeoutMs: 5000, connections: 2, userAgent: 'test' });
}

function collector(): BodyReceiver & { chunks: Buffer[]; statuses: number[]; ended: boolean } {
  const scratch = Buffer.alloc(4); // small, so a body takes several reads into it
  const r = {
    chunks: [] as Buffer[], statuses: [] as number[], ended: false,
    start: (status: number) => void r.statuses.push(status),
    space: () => scratch,
    filled: (n: number) => void r.chunks.push(Buffer.from(scratch.subarray(0, n))),
    end: () => void (r.ended = true),
  };
  return r;
}

test('follows a redirect to another origin with the Range header, without the token, and hands over the body', async () => {
  const h = http();
  seen.length = 0;
  const body = collector();
  const answer = await h.receive(`${base}/redirect`, { range: 'bytes=0-9' }, body);
  await h.close();
  expect(answer).toMatchObject({ statusCode: 206, url: expect.stringContaining('localhost') });
  expect(answer.text).toBeUndefined();
  expect(Buffer.concat(body.chunks).toString()).toBe('0123456789');
  expect(body).toMatchObject({ statuses: [206], ended: true });
  expect(seen.map((s) => [s.range, s.authorization])).toEqual([['bytes=0-9', 'Bearer hf_secret'], ['bytes=0-9', undefined]]);
});

test('an answer other than 2xx comes back with its text and never reaches the receiver', async () => {
  const h = http();
  const body = collector();
  const answer = await h.receive(`${base}/missing`, {}, body);
  await h.close();
  expect(answer).toMatchObject({ statusCode: 404, text: 'no such file' });
  expect(body).toMatchObject({ chunks: [], statuses: [], ended: false });
  expect(failureOf(answer, 'f', false)).toMatchObject({ code: 'EntryNotFound' });
});

test('a receiver that refuses the answer in start fails the request with its error', async () => {
  const h = http();
  const refusal = new RetryableStatus(206, undefined, 'unexpected Content-Range');
  const body: BodyReceiver = { start: () => { throw refusal; }, space: () => Buffer.alloc(16), filled: () => {}, end: () => {} };
  await expect(h.receive(`${base}/data`, {}, body)).rejects.toBe(refusal);
  await h.close();
});
