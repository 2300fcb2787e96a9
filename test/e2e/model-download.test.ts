// A Hugging Face source end to end on the real node (containerd, kubelet, CNI bridge): the operator's
// download Job runs `jamba-runtime download` in the runtime image against the Hub test server, into a
// cache claim (a local PersistentVolume on the node); the serving pod then loads the checkpoint from the
// claim (read-only) and answers; status shows the progress on the way (read by the operator from the
// Job pod's /progress over the pod network). A second JambaDeployment of the same revision reuses the
// claim: no Job runs again; after both are deleted a new one's Job finds the completion marker and
// fetches nothing. Without a claim, the serving pod's init container downloads into the pod's own
// volume. A Job that fails (the Hub answers 404) shows DownloadFailed with the downloader's reason, and
// the operator's next attempt, once the fault is gone, completes.
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { V1Deployment, V1Job, V1JobList, V1Node } from '@kubernetes/client-node';
import { MODEL_CACHE_LABEL } from '../../operator/controller/labels.js';
import { startHubServer, type HubServer } from '../../tools/hub-server/hub-server.js';
import { REAL_NODE, kubectl, kubectlJson, waitFor, withNamespace } from '../harness/cluster.js';
import { condition, getJd, jdManifest, useInProcessOperator, waitForCondition } from '../operator/support.js';
import { TINY_CHECKPOINT, tinyCpuSpec } from './specs.js';

const REPO = 'ai21labs/jamba-tiny';
/** The same checkpoint under another name: a cache entry (and Job) of its own. */
const RETRY_REPO = 'ai21labs/jamba-tiny-retry';
const READY_MS = 240_000;
const ns = withNamespace('e2e-download');
const operator = useInProcessOperator(ns);

let hub: HubServer;
let claimDir: string;
const pv = () => `pv-${ns.name}`;

beforeAll(async () => {
  // The pods reach this machine at the real node's address (the host end of its link, where the kubelet
  // listens), so the Hub server binds that address: reachable from the node's pods, not beyond this machine.
  const node = await kubectlJson<V1Node>(['get', 'node', REAL_NODE]);
  const nodeIp = node.status!.addresses!.find((a) => a.type === 'InternalIP')!.address;
  hub = await startHubServer([{ id: REPO, dir: TINY_CHECKPOINT }, { id: RETRY_REPO, dir: TINY_CHECKPOINT }], { host: nodeIp });
  // The claim: a local volume on the real node, writable by the runtime image's user (65532).
  claimDir = await mkdtemp(path.join(tmpdir(), 'jamba-e2e-cache-'));
  await chmod(claimDir, 0o777);
  await kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1', kind: 'List', items: [
        {
          apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: pv() },
          spec: {
            capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], storageClassName: 'local-e2e', local: { path: claimDir },
            nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [REAL_NODE] }] }] } },
            claimRef: { namespace: ns.name, name: 'hf-cache' },
          },
        },
        { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'hf-cache', namespace: ns.name }, spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'local-e2e', volumeName: pv(), resources: { requests: { storage: '1Gi' } } } },
      ],
    }),
  });
  await waitFor(async () => (await kubectlJson<{ status?: { phase?: string } }>(['get', 'pvc', '-n', ns.name, 'hf-cache'])).status?.phase === 'Bound', { description: 'claim hf-cache bound' });
});

afterAll(async () => {
  await hub?.close();
  await kubectl(['delete', 'pv', pv(), '--wait=false']).catch(() => {});
  if (claimDir) await rm(claimDir, { recursive: true, force: true });
});

/** The huggingFace source: REPO from the Hub server into claim hf-cache, unless `hf` says otherwise (undefined drops a field). */
function spec(hf: Record<string, unknown>): Record<string, unknown> {
  return { ...tinyCpuSpec(), model: { name: 'jamba-tiny', source: { huggingFace: { repo: REPO, endpoint: hub.endpoint, cacheClaimName: 'hf-cache', ...hf } } } };
}

async function apply(name: string, hf: Record<string, unknown> = {}): Promise<void> {
  await kubectl(['apply', '-f', '-'], { input: jdManifest(ns.name, name, spec(hf)) });
}

/** Waits for status to show a download under way: ModelReady Downloading with 0 < DOWNLOAD% < 100. */
function downloadProgressSeen(name: string, where: string) {
  return waitFor(async () => {
    const jd = await getJd(ns.name, name);
    const pct = jd.status?.model?.downloadPercent ?? 0;
    return condition(jd, 'ModelReady')?.reason === 'Downloading' && pct > 0 && pct < 100 ? jd : undefined;
  }, { description: `download progress in status, read from ${where}`, timeoutMs: READY_MS, intervalMs: 250 });
}

/** For a timeout's report: the Hub server's latest requests and unspent faults, and the operator's latest log lines. */
function hubAndOperator(): string {
  const requests = hub.requests.slice(-15).map((r) => `${r.origin} ${r.path}`).join('\n');
  return `--- Hub requests (the latest)\n${requests}\n--- unspent faults: ${JSON.stringify(hub.pendingFaults())}\n--- operator log (the latest)\n${operator.logs.slice(-25).join('\n')}`;
}

const TOTAL_BYTES = () => hub.repo(REPO).files.reduce((s, f) => s + f.size, 0);

async function answers(name: string): Promise<string> {
  const svc = await kubectlJson<{ spec: { clusterIP: string; ports: { port: number }[] } }>(['-n', ns.name, 'get', 'service', name]);
  const res = await fetch(`http://${svc.spec.clusterIP}:${svc.spec.ports[0]!.port}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'jamba-tiny', prompt: 'Once upon a time', max_tokens: 4, temperature: 0 }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { choices: { text: string }[] }).choices[0]!.text;
}

function jobs(): Promise<V1JobList> {
  return kubectlJson<V1JobList>(['get', 'jobs', '-n', ns.name, '-l', MODEL_CACHE_LABEL]);
}

const timings: Record<string, number> = {};

test('cold cache: the download Job fills the claim, status shows its progress, then the pod loads from the claim and answers', async () => {
  // Slowed down (~10 s for the 2 MB of weights) so that progress can be seen in status.
  hub.inject({ origin: 'cdn', kind: 'slow', bytesPerSecond: 200_000, times: 100 });
  const started = Date.now();
  await apply('cold');
  const seen = await downloadProgressSeen('cold', 'the Job pod');
  expect(seen.status?.model?.bytesTotal).toBe(TOTAL_BYTES());
  const job = (await jobs()).items[0] as V1Job;
  await waitFor(async () => (await kubectlJson<V1Job>(['get', 'job', '-n', ns.name, job.metadata!.name!])).status?.succeeded === 1, { description: 'the download Job succeeded', timeoutMs: READY_MS });
  const downloaded = await waitForCondition(ns.name, 'cold', 'ModelReady', 'True', 'Downloaded', READY_MS);
  expect(condition(downloaded, 'ModelReady')?.message).toContain(`commit ${hub.repo(REPO).commit.slice(0, 12)}`);
  await waitForCondition(ns.name, 'cold', 'Ready', 'True', 'AllReplicasReady', READY_MS);
  timings['cold'] = Date.now() - started;
  expect(typeof (await answers('cold'))).toBe('string');
  // The claim holds the revision, verified, with its marker.
  const dir = path.join(claimDir, REPO, 'main');
  const marker = JSON.parse(await readFile(path.join(dir, '.jamba-download-complete.json'), 'utf8')) as { commit: string };
  expect(marker.commit).toBe(hub.repo(REPO).commit);
  for (const f of hub.repo(REPO).files) expect((await readFile(path.join(dir, f.rfilename))).equals(await readFile(f.absPath))).toBe(true);
}, READY_MS * 2);

test('warm cache: a second JambaDeployment of the same revision starts without a download', async () => {
  hub.requests.length = 0;
  const started = Date.now();
  await apply('warm');
  const jd = await waitForCondition(ns.name, 'warm', 'Ready', 'True', 'AllReplicasReady', READY_MS);
  timings['warm'] = Date.now() - started;
  expect(condition(jd, 'ModelReady')).toMatchObject({ status: 'True', reason: 'Downloaded' });
  expect((await jobs()).items).toHaveLength(1);
  expect(hub.requests).toEqual([]);
  expect(typeof (await answers('warm'))).toBe('string');
}, READY_MS + 30_000);

test('after both are deleted (the claim stays), a new JambaDeployment\'s Job finds the marker and fetches nothing', async () => {
  await kubectl(['delete', 'jd', '-n', ns.name, 'cold', 'warm', '--wait=true']);
  await waitFor(async () => (await jobs()).items.length === 0, { description: 'the Job garbage-collected', timeoutMs: 60_000 });
  expect((await kubectlJson<{ status?: { phase?: string } }>(['get', 'pvc', '-n', ns.name, 'hf-cache'])).status?.phase).toBe('Bound');
  hub.requests.length = 0;
  await apply('again');
  await waitForCondition(ns.name, 'again', 'ModelReady', 'True', 'Downloaded', READY_MS);
  expect(hub.requests).toEqual([]);
  process.stdout.write(`apply → Ready on the real node: cold cache ${timings['cold']} ms, warm cache ${timings['warm']} ms\n`);
}, READY_MS + 60_000);

test('no cache claim: the serving pod\'s init container downloads into its own volume (progress in status), then the pod loads and answers', async () => {
  hub.clearFaults();
  hub.inject({ origin: 'cdn', kind: 'slow', bytesPerSecond: 200_000, times: 100 });
  hub.requests.length = 0;
  await apply('per-pod', { cacheClaimName: undefined });
  const seen = await downloadProgressSeen('per-pod', 'the pod\'s init container');
  expect(condition(seen, 'ModelReady')?.message).toMatch(/^1 of 1 pod\(s\) downloading ai21labs\/jamba-tiny@main \(no cache claim\): .* of .* \(\d+%\)/);
  expect(seen.status?.model?.bytesTotal).toBe(TOTAL_BYTES());
  const jd = await waitForCondition(ns.name, 'per-pod', 'Ready', 'True', 'AllReplicasReady', READY_MS);
  hub.clearFaults();
  expect(condition(jd, 'ModelReady')).toMatchObject({ status: 'True', reason: 'Downloaded', message: 'ai21labs/jamba-tiny@main downloaded by each of 1 pod(s) (no cache claim)' });
  // The pod fetched every file itself (the claim's copy was not used), and no Job ran for it.
  const resolved = hub.requests.filter((r) => r.origin === 'hub' && r.path.includes('/resolve/')).map((r) => r.path);
  for (const f of hub.repo(REPO).files) expect(resolved.some((p) => p.endsWith(`/${f.rfilename}`))).toBe(true);
  expect((await jobs()).items.filter((j) => j.metadata?.ownerReferences?.some((o) => o.name === 'per-pod'))).toEqual([]);
  const dep = await kubectlJson<V1Deployment>(['get', 'deployment', '-n', ns.name, 'per-pod']);
  expect(dep.spec!.template.spec!.initContainers!.map((c) => c.name)).toEqual(['download']);
  expect(dep.spec!.template.spec!.volumes).toContainEqual({ name: 'model', emptyDir: {} });
  expect(typeof (await answers('per-pod'))).toBe('string');
}, READY_MS + 30_000);

test('a download Job that fails (the Hub answers 404) shows DownloadFailed with the reason at once; the next attempt, the fault gone, completes', async () => {
  hub.clearFaults();
  hub.inject({ origin: 'hub', kind: 'status', status: 404, pathIncludes: `/api/models/${RETRY_REPO}/`, times: 1 });
  await apply('retry', { repo: RETRY_REPO });
  const failed = await waitForCondition(ns.name, 'retry', 'ModelReady', 'False', 'DownloadFailed', READY_MS, hubAndOperator);
  expect(condition(failed, 'ModelReady')?.message).toMatch(
    new RegExp(`^download Job jamba-download-[0-9a-f]{16}-1 \\(attempt 1\\) failed: RepoNotFound: ${RETRY_REPO}@main: not found \\(HTTP 404\\); next attempt in \\d+ s$`));
  expect(condition(failed, 'Degraded')).toMatchObject({ status: 'True', reason: 'DownloadFailed' });
  expect(hub.pendingFaults()).toEqual([]);
  // One pod, failed for good by the Job's pod failure policy (exit 3: retrying the same pod cannot help).
  const first = (await jobs()).items.find((j) => j.metadata?.annotations?.['serving.jamba.dev/model'] === `${RETRY_REPO}@main`)!;
  expect(first.status).toMatchObject({ failed: 1 });
  expect(first.status?.conditions).toContainEqual(expect.objectContaining({ type: 'Failed', status: 'True', reason: 'PodFailurePolicy' }));

  // The operator's next attempt after its backoff (1 min): a new Job replaces the failed one and completes.
  const done = await waitForCondition(ns.name, 'retry', 'ModelReady', 'True', 'Downloaded', READY_MS, hubAndOperator);
  expect(condition(done, 'ModelReady')?.message).toContain(`commit ${hub.repo(RETRY_REPO).commit.slice(0, 12)}`);
  const attempts = (await jobs()).items.filter((j) => j.metadata?.annotations?.['serving.jamba.dev/model'] === `${RETRY_REPO}@main`);
  expect(attempts.map((j) => j.metadata?.annotations?.['serving.jamba.dev/download-attempt'])).toEqual(['2']);
  await waitForCondition(ns.name, 'retry', 'Ready', 'True', 'AllReplicasReady', READY_MS);
  expect(typeof (await answers('retry'))).toBe('string');
}, READY_MS * 2 + 60_000);
