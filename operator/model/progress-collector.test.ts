// The model progress collector against real HTTP pages on loopback: a download's /progress served from
// the downloader's own DownloadProgress, a loading runtime's /metrics from the runtime's own
// RuntimeMetrics registry, and pods that hang. Pods carry made-up IPs; the reader maps each pod
// address to the loopback server that plays it (as the KWOK-based operator test does).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { V1Pod } from '@kubernetes/client-node';
import type { JambaDeployment } from '../api/jambadeployment.js';
import { CONTAINER_NAME, DOWNLOAD_CONTAINER, DOWNLOAD_PROGRESS_PORT, INSTANCE_LABEL } from '../controller/labels.js';
import { jambaDeployment } from '../controller/testing/fixtures.js';
import { silentLogger } from '../observability/logger.js';
import { DownloadProgress } from '../../runtime/download/progress.js';
import { RuntimeMetrics } from '../../runtime/metrics/metrics.js';
import { ModelProgressCollector, progressTargets, type ModelProgressCollectorOptions } from './progress-collector.js';
import { HttpModelProgressReader, type ModelProgressReader } from './progress-reader.js';

const RUNTIME_PORT = 8000;
const servers: Server[] = [];
const reader = new HttpModelProgressReader(300);

afterAll(async () => {
  await reader.close();
  await Promise.all(servers.map((s) => new Promise((r) => {
    s.closeAllConnections();
    s.close(r);
  })));
});

/** A loopback server; `inFlight` counts requests being answered (for the concurrency bound). */
async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A downloader's /progress page, from its own progress bookkeeping. */
async function downloader(progress: DownloadProgress, delayMs = 0): Promise<string> {
  return serve((req, res) => setTimeout(() => {
    res.writeHead(req.url === '/progress' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(req.url === '/progress' ? JSON.stringify(progress.snapshot()) : '');
  }, delayMs));
}

/** A loading runtime's /metrics page, from the runtime's own metrics. */
async function loadingRuntime(metrics: RuntimeMetrics): Promise<string> {
  return serve((req, res) => void metrics.registry.metrics().then((text) => {
    res.writeHead(req.url === '/metrics' ? 200 : 404, { 'content-type': metrics.registry.contentType });
    res.end(text);
  }));
}

function downloadJobPod(name: string, ip: string): V1Pod {
  return {
    metadata: { name, namespace: 'ns', uid: `uid-${name}` },
    status: { phase: 'Running', podIP: ip, containerStatuses: [{ name: DOWNLOAD_CONTAINER, image: 'x', imageID: '', ready: true, restartCount: 0, state: { running: {} } }] },
  };
}

function servingPod(name: string, ip: string | undefined, state: 'init-downloading' | 'loading' | 'ready', deleted = false): V1Pod {
  const running = { running: {} };
  return {
    metadata: { name, namespace: 'ns', uid: `uid-${name}`, labels: { [INSTANCE_LABEL]: 'mini' }, ...(deleted ? { deletionTimestamp: new Date() } : {}) },
    status: {
      phase: state === 'init-downloading' ? 'Pending' : 'Running', ...(ip ? { podIP: ip } : {}),
      conditions: [{ type: 'Ready', status: state === 'ready' ? 'True' : 'False' }],
      initContainerStatuses: [{ name: DOWNLOAD_CONTAINER, image: 'x', imageID: '', ready: false, restartCount: 0, state: state === 'init-downloading' ? running : { terminated: { exitCode: 0 } } }],
      ...(state === 'init-downloading' ? {} : { containerStatuses: [{ name: CONTAINER_NAME, image: 'x', imageID: '', ready: state === 'ready', restartCount: 0, state: running }] }),
    },
  };
}

describe('progressTargets: which pods have progress to read', () => {
  test.each([
    ['a running download Job pod: its /progress', [downloadJobPod('job-1', '10.0.0.1')], [], [{ id: 'uid-job-1/download', pod: 'job-1', kind: 'download', address: `10.0.0.1:${DOWNLOAD_PROGRESS_PORT}` }]],
    ['a serving pod whose init container downloads: its /progress', [], [servingPod('a', '10.0.0.2', 'init-downloading')], [{ id: 'uid-a/download', pod: 'a', kind: 'download', address: `10.0.0.2:${DOWNLOAD_PROGRESS_PORT}` }]],
    ['a runtime running, not ready: its /metrics', [], [servingPod('a', '10.0.0.2', 'loading')], [{ id: 'uid-a/load', pod: 'a', kind: 'load', address: `10.0.0.2:${RUNTIME_PORT}` }]],
    ['an IPv6 pod: the address in brackets', [], [servingPod('a', 'fd00::7', 'loading')], [{ id: 'uid-a/load', pod: 'a', kind: 'load', address: `[fd00::7]:${RUNTIME_PORT}` }]],
    ['a pod without an IP yet: no address', [], [servingPod('a', undefined, 'loading')], [{ id: 'uid-a/load', pod: 'a', kind: 'load', address: undefined }]],
    ['a ready pod, a deleted pod: nothing', [], [servingPod('a', '10.0.0.2', 'ready'), servingPod('b', '10.0.0.3', 'loading', true)], []],
  ])('%s', (_what, jobPods, pods, expected) => {
    expect(progressTargets(jobPods, pods, RUNTIME_PORT)).toEqual(expected);
  });
});

/** A collector over `jds` and their pods, reading through `reader` with pod addresses mapped to servers. */
function collector(world: { jds: JambaDeployment[]; jobPods: V1Pod[]; pods: V1Pod[] }, addresses: Record<string, string>, o: ModelProgressCollectorOptions & { now?: () => number } = {}) {
  const enqueued: string[] = [];
  const reads: string[] = [];
  const mapped: ModelProgressReader = {
    download: (address) => (reads.push(address), reader.download(addresses[address] ?? '127.0.0.1:1')),
    loadRatio: (address) => (reads.push(address), reader.loadRatio(addresses[address] ?? '127.0.0.1:1')),
  };
  const c = new ModelProgressCollector({
    jambaDeployments: { get: (name) => world.jds.find((j) => j.metadata.name === name), list: () => world.jds },
    podsOf: (jd) => ({ jobPods: jd.spec.model.source.huggingFace?.cacheClaimName ? world.jobPods : [], servingPods: world.pods.filter((p) => p.metadata?.labels?.[INSTANCE_LABEL] === jd.metadata.name) }),
    reader: mapped, enqueue: (key) => enqueued.push(key), log: silentLogger, ...(o.now ? { now: o.now } : {}),
  }, o);
  return { c, enqueued, reads };
}

const hf = (claim?: string) => ({ model: { name: 'jamba-tiny', source: { huggingFace: { repo: 'ai21labs/jamba-tiny', ...(claim ? { cacheClaimName: claim } : {}) } } } });

test('a round reads each pod\'s progress, the reconcile looks it up without I/O, and only a change enqueues', async () => {
  let clock = 1_000_000;
  const progress = new DownloadProgress('ai21labs/jamba-tiny', 'main', () => clock);
  progress.start('c0ffee', [{ path: 'model.safetensors', size: 1000 }]);
  progress.received('model.safetensors', 250);
  const metrics = new RuntimeMetrics('jamba-tiny');
  metrics.setLoadProgress(0.3);
  const jd = jambaDeployment(hf(), { name: 'mini' });
  const world = { jds: [jd], jobPods: [], pods: [servingPod('a', '10.0.0.1', 'init-downloading'), servingPod('b', '10.0.0.2', 'loading'), servingPod('c', '10.0.0.3', 'ready')] };
  const { c, enqueued, reads } = collector(world, { [`10.0.0.1:${DOWNLOAD_PROGRESS_PORT}`]: await downloader(progress), [`10.0.0.2:${RUNTIME_PORT}`]: await loadingRuntime(metrics) });

  // Before any round: nothing to show, nothing enqueued.
  expect(c.readings([], world.pods, RUNTIME_PORT)).toEqual({ download: new Map(), load: new Map() });
  await c.runRound();
  expect(reads.sort()).toEqual([`10.0.0.1:${DOWNLOAD_PROGRESS_PORT}`, `10.0.0.2:${RUNTIME_PORT}`]);
  expect(enqueued).toEqual(['ns/mini']);
  const first = c.readings([], world.pods, RUNTIME_PORT);
  expect(first.download.get('a')).toMatchObject({ phase: 'Downloading', bytesDone: 250, bytesTotal: 1000, percent: 25, commit: 'c0ffee' });
  expect([...first.load]).toEqual([['b', 0.3]]);

  // Nothing moved: no reconcile asked for.
  enqueued.length = 0;
  await c.runRound();
  expect(enqueued).toEqual([]);

  // Progress moved on both pods: one enqueue for the JambaDeployment, the new figures.
  clock += 2000;
  progress.received('model.safetensors', 500);
  metrics.setLoadProgress(0.8);
  await c.runRound();
  expect(enqueued).toEqual(['ns/mini']);
  const moved = c.readings([], world.pods, RUNTIME_PORT);
  expect(moved.download.get('a')).toMatchObject({ bytesDone: 750, percent: 75, bytesPerSecond: 375, etaSeconds: 1 });
  expect(moved.load.get('b')).toBe(0.8);

  // b is ready now: the reconcile sees no load reading for it, and the next round forgets it.
  const readyB = servingPod('b', '10.0.0.2', 'ready');
  world.pods[1] = readyB;
  expect(c.readings([], world.pods, RUNTIME_PORT).load.size).toBe(0);
  reads.length = 0;
  await c.runRound();
  expect(reads).toEqual([`10.0.0.1:${DOWNLOAD_PROGRESS_PORT}`]);
  world.pods[1] = servingPod('b', '10.0.0.2', 'loading');
  expect(c.readings([], world.pods, RUNTIME_PORT).load.size).toBe(0);
});

test('hung pods cost one timeout per round, not the others\' readings; reads in flight are bounded', async () => {
  const progress = new DownloadProgress('ai21labs/jamba-tiny', 'main');
  progress.start('c0ffee', [{ path: 'model.safetensors', size: 1000 }]);
  progress.received('model.safetensors', 100);
  // Requests being answered, over both servers (a hung one until the reader gives up and cuts it).
  let inFlight = 0;
  let most = 0;
  const slow = await serve((_req, res) => {
    most = Math.max(most, ++inFlight);
    setTimeout(() => {
      inFlight--;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(progress.snapshot()));
    }, 50);
  });
  const hung = await serve((req) => {
    most = Math.max(most, ++inFlight);
    req.socket.once('close', () => inFlight--);
  });
  const addresses: Record<string, string> = {};
  const pods: V1Pod[] = [];
  for (let i = 0; i < 8; i++) {
    pods.push(servingPod(`p${i}`, `10.0.1.${i}`, 'init-downloading'));
    addresses[`10.0.1.${i}:${DOWNLOAD_PROGRESS_PORT}`] = i < 2 ? hung : slow;
  }
  const { c } = collector({ jds: [jambaDeployment(hf(), { name: 'mini' })], jobPods: [], pods }, addresses, { concurrency: 3 });
  const started = Date.now();
  await c.runRound();
  const took = Date.now() - started;
  expect(most).toBe(3);
  // Two hung pods (300 ms timeout each, in parallel with the rest) and six 50 ms reads, three at a time.
  expect(took).toBeGreaterThanOrEqual(300);
  expect(took).toBeLessThan(2000);
  const r = c.readings([], pods, RUNTIME_PORT);
  expect([...r.download.keys()].sort()).toEqual(['p2', 'p3', 'p4', 'p5', 'p6', 'p7']);
});

test('a pod that stops answering keeps its last reading until it is stale, then loses it (and the JambaDeployment is enqueued)', async () => {
  let now = 1_000_000;
  const metrics = new RuntimeMetrics('jamba-tiny');
  metrics.setLoadProgress(0.5);
  const up = await loadingRuntime(metrics);
  const addresses: Record<string, string> = { [`10.0.2.1:${RUNTIME_PORT}`]: up };
  const pods = [servingPod('a', '10.0.2.1', 'loading')];
  const { c, enqueued } = collector({ jds: [jambaDeployment({}, { name: 'mini' })], jobPods: [], pods }, addresses, { intervalMs: 1000, now: () => now });
  await c.runRound();
  expect(c.readings([], pods, RUNTIME_PORT).load.get('a')).toBe(0.5);
  enqueued.length = 0;
  addresses[`10.0.2.1:${RUNTIME_PORT}`] = '127.0.0.1:1'; // refused from now on
  now += 2000;
  await c.runRound();
  expect(c.readings([], pods, RUNTIME_PORT).load.get('a')).toBe(0.5);
  expect(enqueued).toEqual([]);
  now += 2000; // 4 s without an answer: more than three intervals
  await c.runRound();
  expect(c.readings([], pods, RUNTIME_PORT).load.has('a')).toBe(false);
  expect(enqueued).toEqual(['ns/mini']);
});

test('a download Job\'s pod shared by two JambaDeployments (one cache) is read once; both are enqueued', async () => {
  const progress = new DownloadProgress('ai21labs/jamba-tiny', 'main');
  progress.start('c0ffee', [{ path: 'model.safetensors', size: 1000 }]);
  progress.received('model.safetensors', 600);
  const jobPods = [downloadJobPod('job-1', '10.0.3.1')];
  const { c, enqueued, reads } = collector(
    { jds: [jambaDeployment(hf('hf-cache'), { name: 'first' }), jambaDeployment(hf('hf-cache'), { name: 'second' })], jobPods, pods: [] },
    { [`10.0.3.1:${DOWNLOAD_PROGRESS_PORT}`]: await downloader(progress) },
  );
  await c.runRound();
  expect(reads).toEqual([`10.0.3.1:${DOWNLOAD_PROGRESS_PORT}`]);
  expect(enqueued.sort()).toEqual(['ns/first', 'ns/second']);
  expect(c.readings(jobPods, [], RUNTIME_PORT).download.get('job-1')).toMatchObject({ bytesDone: 600, percent: 60 });
});

test('started, it reads on its own every interval and enqueues; stop() waits for the round in flight', async () => {
  const metrics = new RuntimeMetrics('jamba-tiny');
  metrics.setLoadProgress(0.1);
  const pods = [servingPod('a', '10.0.4.1', 'loading')];
  const { c, enqueued } = collector({ jds: [jambaDeployment({}, { name: 'mini' })], jobPods: [], pods }, { [`10.0.4.1:${RUNTIME_PORT}`]: await loadingRuntime(metrics) }, { intervalMs: 20 });
  const enqueues = async (n: number) => {
    for (const deadline = Date.now() + 10_000; enqueued.length < n && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 10));
  };
  c.start();
  await enqueues(1);
  expect(c.readings([], pods, RUNTIME_PORT).load.get('a')).toBe(0.1);
  metrics.setLoadProgress(0.9);
  await enqueues(2);
  // More rounds without a change: no more enqueues.
  await new Promise((r) => setTimeout(r, 200));
  await c.stop();
  expect(enqueued).toEqual(['ns/mini', 'ns/mini']);
  expect(c.readings([], pods, RUNTIME_PORT).load.get('a')).toBe(0.9);
});
