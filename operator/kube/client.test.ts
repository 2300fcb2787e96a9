// The write gate against a real HTTP server on loopback: a write is not sent once the term is over,
// and a write in flight is cut when the term ends, while reads and lease requests keep their own limits.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient, NotLeaderError } from './client.js';

let server: Server;
const seen: string[] = [];
/** Requests to paths starting with /stall are never answered. */
beforeAll(async () => {
  server = createServer((req: IncomingMessage, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.url?.startsWith('/stall')) return;
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function client(): KubeClient {
  const kc = new KubeConfig();
  const port = (server.address() as AddressInfo).port;
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return new KubeClient(kc);
}

test('a write is refused without being sent once the term is over; reads and lease requests still go', async () => {
  const c = client();
  c.setWriteGate({ remainingMs: () => 0 });
  seen.length = 0;
  await expect(c.request({ method: 'PATCH', path: '/apis/x', verb: 'PATCH', resource: 'x', body: {} })).rejects.toBeInstanceOf(NotLeaderError);
  expect(seen).toEqual([]);
  await expect(c.request({ method: 'GET', path: '/read', verb: 'GET', resource: 'x' })).resolves.toEqual({ ok: true });
  await expect(c.request({ method: 'PUT', path: '/lease', verb: 'UPDATE', resource: 'leases', body: {}, ungated: true })).resolves.toEqual({ ok: true });
  expect(seen).toEqual(['GET /read', 'PUT /lease']);
  c.close();
});

test('a write in flight is cut when the term ends', async () => {
  const c = client();
  const endsAt = Date.now() + 300;
  c.setWriteGate({ remainingMs: () => endsAt - Date.now() });
  const started = Date.now();
  await expect(c.request({ method: 'PATCH', path: '/stall/x', verb: 'PATCH', resource: 'x', body: {} })).rejects.toThrow(/no answer within/);
  const took = Date.now() - started;
  expect(took).toBeGreaterThanOrEqual(250);
  expect(took).toBeLessThan(2000);
  c.close();
});

test('an aborted signal cuts a request', async () => {
  const c = client();
  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error('deadline')), 100);
  await expect(c.request({ method: 'GET', path: '/stall/y', verb: 'GET', resource: 'leases', signal: controller.signal })).rejects.toThrow();
  c.close();
});
