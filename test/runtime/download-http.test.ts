// HubHttp.receive: a body handed over through undici's dispatch callbacks, redirects followed (the
// Range header kept, the token only for the first origin), other answers returned with their text.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEFAULT_RETRY, failureOf, HubHttp, RetryableStatus, type BodyReceiver } from '../../runtime/download/http.js';

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
  // A free port in 20000–29999 (the range this project's test servers use), tried at random.
  for (let attempt = 0; ; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 10000);
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok || attempt >= 20) break;
  }
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

function http(): HubHttp {
  return new HubHttp({ token: 'hf_secret', retry: DEFAULT_RETRY, idleTimeoutMs: 5000, connections: 2, userAgent: 'test' });
}

function collector(): BodyReceiver & { chunks: Buffer[]; statuses: number[]; ended: boolean } {
  const r = {
    chunks: [] as Buffer[], statuses: [] as number[], ended: false,
    start: (status: number) => void r.statuses.push(status),
    data: (chunk: Buffer) => void r.chunks.push(chunk),
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
  const body: BodyReceiver = { start: () => { throw refusal; }, data: () => {}, end: () => {} };
  await expect(h.receive(`${base}/data`, {}, body)).rejects.toBe(refusal);
  await h.close();
});
