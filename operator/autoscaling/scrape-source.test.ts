// The scrape source against real runtimes (in-process servers over the tiny fixture model, on loopback):
// exact rates from known token counts, a restarted runtime's counter reset, and pods that fail in each
// way a pod can (refused, hanging, garbage), with the scrapes in flight bounded.
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { Runtime } from '../../runtime/server/runtime.js';
import { postJson, startTestRuntime } from '../../test/runtime/helpers.js';
import type { MetricsQuery, PodTarget } from './metrics-source.js';
import { ScrapeSource } from './scrape-source.js';

let runtimes: Runtime[] = [];
let clock = 0;
const servers: Array<Server | TcpServer> = [];
const sockets = new Map<Server | TcpServer, Socket[]>();

beforeAll(async () => {
  runtimes = await Promise.all([0, 1, 2].map(() => startTestRuntime()));
});
afterAll(async () => {
  await Promise.all(runtimes.map((r) => r.close()));
  await Promise.all(servers.map(closeServer));
});

/** Closes a server and the connections it still holds (the hanging one never answers). */
async function closeServer(server: Server | TcpServer): Promise<void> {
  const closed = new Promise((r) => server.close(r));
  if ('closeAllConnections' in server) server.closeAllConnections();
  for (const socket of sockets.get(server) ?? []) socket.destroy();
  await closed;
}

const hostOf = (r: Runtime) => new URL(r.url).host;
const query = (pods: PodTarget[], tokens: MetricsQuery['tokens'] = 'Generation'): MetricsQuery => ({ namespace: 'ns', jambaDeployment: 'mini', pods, windowSeconds: 60, tokens });

/** Generates exactly `tokens` tokens on `r` (ignore_eos), in requests of 10. */
async function generate(r: Runtime, tokens: number): Promise<void> {
  for (let k = 0; k < tokens / 10; k++) {
    const res = await postJson(r, '/v1/completions', { prompt: 'Hello', max_tokens: 10, ignore_eos: true, temperature: 0 });
    expect(res.status).toBe(200);
    expect(res.body.usage.completion_tokens).toBe(10);
  }
}

async function listen(server: Server | TcpServer): Promise<string> {
  servers.push(server);
  server.on('connection', (socket: Socket) => sockets.set(server, [...(sockets.get(server) ?? []), socket]));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `127.0.0.1:${(server.address() as { port: number }).port}`;
}

test('rates from counter deltas over the window; a restarted runtime is a reset, not negative throughput', async () => {
  const source = new ScrapeSource({ now: () => clock });
  const a: PodTarget = { uid: 'uid-a', name: 'a', address: hostOf(runtimes[0]!) };
  const b: PodTarget = { uid: 'uid-b', name: 'b', address: hostOf(runtimes[1]!) };
  clock = 1_000_000;
  const first = await source.read(query([a, b]));
  expect(first.errors).toEqual([]);
  // One scrape says nothing about a rate yet, but the gauges are there.
  expect(first.pods.get('a')).toEqual({ tokensPerSecond: undefined, waitingRequests: 0, runningRequests: 0, kvCacheUsage: 0, stateUsage: 0, sampledAt: 1_000_000 });

  await generate(runtimes[0]!, 60);
  clock += 10_000;
  const second = await source.read(query([a, b]));
  expect(second.pods.get('a')!.tokensPerSecond).toBeCloseTo(6, 9);
  expect(second.pods.get('b')!.tokensPerSecond).toBe(0);

  // Pod a's runtime restarts (the third runtime has counted nothing): its counter goes down.
  a.address = hostOf(runtimes[2]!);
  await generate(runtimes[2]!, 10);
  clock += 10_000;
  const third = await source.read(query([a, b]));
  expect(third.pods.get('a')!.tokensPerSecond).toBeCloseTo((60 + 10) / 20, 9);
  await source.close();
});

test('prompt + generation when asked', async () => {
  const source = new ScrapeSource({ now: () => clock });
  const pod: PodTarget = { uid: 'uid-p', name: 'p', address: hostOf(runtimes[1]!) };
  await source.read(query([pod], 'PromptAndGeneration'));
  const res = await postJson(runtimes[1]!, '/v1/completions', { prompt: 'Hello there', max_tokens: 10, ignore_eos: true });
  clock += 10_000;
  const r = await source.read(query([pod], 'PromptAndGeneration'));
  expect(r.pods.get('p')!.tokensPerSecond).toBeCloseTo((res.body.usage.prompt_tokens + 10) / 10, 9);
  await source.close();
});

test('pods that refuse, hang or answer garbage are missing this round (not zero), each with its error; timeouts are short', async () => {
  const hanging = await listen(createTcpServer(() => undefined));
  const garbage = await listen(createServer((_, res) => res.end('this is not {an exposition')));
  const closed = await listen(createTcpServer());
  await closeServer(servers.pop()!);
  const source = new ScrapeSource({ timeoutMs: 500, now: () => clock });
  const started = Date.now();
  const r = await source.read(query([
    { uid: '1', name: 'ok', address: hostOf(runtimes[0]!) },
    { uid: '2', name: 'hanging', address: hanging },
    { uid: '3', name: 'garbage', address: garbage },
    { uid: '4', name: 'refused', address: closed },
    { uid: '5', name: 'no-ip-yet' },
  ]));
  expect(Date.now() - started).toBeLessThan(3000);
  expect([...r.pods.keys()]).toEqual(['ok']);
  expect(r.failed).toBe(false);
  expect(r.errors).toHaveLength(3);
  expect(r.errors.join('\n')).toMatch(/pod hanging .*abort|timeout/i);
  expect(r.errors.join('\n')).toMatch(/pod garbage .*not a sample line/);
  expect(r.errors.join('\n')).toMatch(/pod refused .*ECONNREFUSED/);
  // Every pod failing is the source failing: the decision holds.
  const all = await source.read(query([{ uid: '2', name: 'hanging', address: hanging }]));
  expect(all.failed).toBe(true);
  await source.close();
});

test('scrapes in flight are bounded by the concurrency', async () => {
  let inFlight = 0;
  let most = 0;
  const body = '# TYPE jamba_generation_tokens_total counter\njamba_generation_tokens_total{model_name="m"} 5\n';
  const slow = await listen(createServer((_, res) => {
    most = Math.max(most, ++inFlight);
    setTimeout(() => {
      inFlight--;
      res.end(body);
    }, 100);
  }));
  const source = new ScrapeSource({ concurrency: 3, now: () => clock });
  const r = await source.read(query(Array.from({ length: 10 }, (_, k) => ({ uid: `u${k}`, name: `p${k}`, address: slow }))));
  expect(r.pods.size).toBe(10);
  expect(most).toBe(3);
  await source.close();
});
