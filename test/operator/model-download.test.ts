// A Hugging Face source with a cache claim against the real control plane (the Job controller of
// kube-controller-manager, the scheduler, KWOK GPU nodes): one download Job per (repo, revision, claim),
// serving pods only after it completed, progress in status, events, a second JambaDeployment reusing
// the download, the claim left alone on deletion.
//
// KWOK nodes run no process, so the download pod is held off the nodes (a node selector nothing
// matches) and THIS TEST plays its kubelet: it marks the pod Running, while a real `jamba-runtime
// download` process runs on loopback against the Hub test server; the operator's progress reader
// (the real HTTP reader) is pointed at that process instead of the pod's IP; then the test marks the
// pod Succeeded with the process's real termination message. The real Job controller turns that into
// a complete Job. (The real node's end-to-end test runs the Job for real.)
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { CoreV1EventList, V1Deployment, V1Job, V1JobList, V1Pod, V1PodList } from '@kubernetes/client-node';
import { HttpModelProgressReader } from '../../operator/model/progress-reader.js';
import { MODEL_CACHE_LABEL } from '../../operator/controller/labels.js';
import { startHubServer, type HubServer } from '../../tools/hub-server/hub-server.js';
import { kubectl, kubectlJson, waitFor, withNamespace } from '../harness/cluster.js';
import { repoRoot } from '../harness/exec.js';
import { MINI, condition, createJd, getJd, useInProcessOperator, waitForCondition } from './support.js';

const REPO = 'ai21labs/jamba-tiny-unusual';
const ns = withNamespace('op-download');
const realReader = new HttpModelProgressReader(2000);
/** Where the real downloader serves /progress (set once it listens). */
let downloaderAddress = '';
let downloaderProcess: ReturnType<typeof spawn> | undefined;
useInProcessOperator(ns, undefined, {
  modelReader: {
    download: () => realReader.download(downloaderAddress),
    loadRatio: () => Promise.resolve(undefined),
  },
});

let hub: HubServer;
let work: string;
beforeAll(async () => {
  hub = await startHubServer([{ id: REPO, dir: path.join(repoRoot, 'test/fixtures/jamba-tiny-unusual') }]);
  work = await mkdtemp(path.join(tmpdir(), 'jamba-op-download-'));
  // A claim bound to a volume of its own, so pods that use it can be scheduled.
  const pv = `pv-${ns.name}`;
  await kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1', kind: 'List', items: [
        { apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: pv }, spec: { capacity: { storage: '10Gi' }, accessModes: ['ReadWriteMany'], storageClassName: 'manual', hostPath: { path: `/tmp/${pv}` }, claimRef: { namespace: ns.name, name: 'hf-cache' } } },
        { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'hf-cache', namespace: ns.name }, spec: { accessModes: ['ReadWriteMany'], storageClassName: 'manual', volumeName: pv, resources: { requests: { storage: '10Gi' } } } },
      ],
    }),
  });
  await waitFor(async () => (await kubectlJson<{ status?: { phase?: string } }>(['get', 'pvc', '-n', ns.name, 'hf-cache'])).status?.phase === 'Bound', { description: 'claim hf-cache bound' });
});

afterAll(async () => {
  if (downloaderProcess && downloaderProcess.exitCode === null) downloaderProcess.kill();
  await hub?.close();
  await realReader.close();
  await kubectl(['delete', 'pv', `pv-${ns.name}`, '--wait=false']).catch(() => {});
  if (work) await rm(work, { recursive: true, force: true });
});

const source = { huggingFace: { repo: REPO, revision: 'main', cacheClaimName: 'hf-cache' } };

function jobs(): Promise<V1JobList> {
  return kubectlJson<V1JobList>(['get', 'jobs', '-n', ns.name, '-l', MODEL_CACHE_LABEL]);
}

async function patchPodStatus(name: string, status: Record<string, unknown>): Promise<void> {
  await kubectl(['patch', 'pod', '-n', ns.name, name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
}

test('a download Job fills the claim once; pods start after it; progress, events; a second JambaDeployment reuses it', async () => {
  // Held off the nodes until the test lets it go (see the top of the file).
  await createJd(ns.name, 'first', { model: { name: MINI, source }, gpusPerReplica: 1, scheduling: { nodeSelector: { 'jamba.dev/test-hold': 'true' } } });
  const job = await waitFor(async () => (await jobs()).items[0], { description: 'the download Job' });
  expect(job.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'JambaDeployment', name: 'first', controller: true });
  const container = job.spec!.template.spec!.containers[0]!;
  expect(container.args).toEqual(['download', '--repo', REPO, '--revision', 'main', '--dir', `/models/${REPO}/main`, '--metrics-port', '9100',
    '--progress-interval', '10', '--termination-message-path', '/dev/termination-log']);
  expect(job.spec!.template.spec!.volumes).toEqual([{ name: 'model', persistentVolumeClaim: { claimName: 'hf-cache' } }]);
  // No serving pods while the model is not there.
  await expect(kubectlJson<V1Deployment>(['get', 'deployment', '-n', ns.name, 'first'])).rejects.toThrow(/NotFound/);

  const pod = await waitFor(async () => (await kubectlJson<V1PodList>(['get', 'pods', '-n', ns.name, '-l', `job-name=${job.metadata!.name}`])).items[0], { description: 'the download pod' });
  // The real downloader, slowed down by the Hub server (~17 s) so its progress can be watched.
  hub.inject({ origin: 'cdn', kind: 'slow', bytesPerSecond: 60_000, times: 100 });
  const termination = path.join(work, 'termination-log');
  const downloader = downloaderProcess = spawn(process.execPath, [path.join(repoRoot, 'dist/runtime/cmd/main.js'), 'download', '--repo', REPO, '--dir', path.join(work, 'claim', REPO, 'main'),
    '--metrics-port', '0', '--metrics-host', '127.0.0.1', '--progress-interval', '1', '--connections', '2', '--chunk-size', '1', '--termination-message-path', termination],
  { env: { ...process.env, HF_ENDPOINT: hub.endpoint }, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => downloader.on('exit', resolve));
  createInterface({ input: downloader.stdout! }).on('line', (line) => {
    const l = JSON.parse(line) as { msg?: string; address?: string };
    if (l.msg === 'progress endpoint') downloaderAddress = l.address!;
  });

  await waitFor(() => downloaderAddress !== '', { description: 'the downloader\'s progress endpoint' });
  await patchPodStatus(pod.metadata!.name!, {
    phase: 'Running', podIP: '10.244.0.99', podIPs: [{ ip: '10.244.0.99' }],
    containerStatuses: [{ name: 'download', image: container.image, imageID: '', ready: true, restartCount: 0, started: true, state: { running: { startedAt: new Date().toISOString() } } }],
  });
  const downloading = await waitFor(async () => {
    const jd = await getJd(ns.name, 'first');
    const pct = jd.status?.model?.downloadPercent ?? 0;
    return condition(jd, 'ModelReady')?.reason === 'Downloading' && pct > 0 && pct < 100 ? jd : undefined;
  }, { description: 'download progress in status', timeoutMs: 60_000, intervalMs: 300 });
  expect(downloading.status?.model).toMatchObject({ bytesTotal: hub.repo(REPO).files.reduce((s, f) => s + f.size, 0), bytesDone: expect.any(Number) });
  expect(condition(downloading, 'ModelReady')?.message).toMatch(/downloading ai21labs\/jamba-tiny-unusual@main into claim hf-cache .*: .* of .* \(\d+%\)/);
  expect(condition(downloading, 'Ready')).toMatchObject({ status: 'False', reason: 'Downloading' });
  const wide = await kubectl(['get', 'jd', '-n', ns.name, 'first', '-o', 'wide']);
  const [header, row] = wide.split('\n');
  expect(header).toMatch(/DOWNLOAD%\s+LOAD%/);
  const shown = Number(row!.slice(header!.indexOf('DOWNLOAD%')).split(/\s+/)[0]);
  expect(shown).toBeGreaterThan(0);
  expect(shown).toBeLessThanOrEqual(100);

  // The download finishes; the pod exits 0 with the downloader's own final report.
  expect(await exited).toBe(0);
  const message = await readFile(termination, 'utf8');
  await patchPodStatus(pod.metadata!.name!, {
    phase: 'Succeeded',
    containerStatuses: [{ name: 'download', image: container.image, imageID: '', ready: false, restartCount: 0, started: false,
      state: { terminated: { exitCode: 0, reason: 'Completed', message, startedAt: new Date().toISOString(), finishedAt: new Date().toISOString() } } }],
  });
  await waitFor(async () => (await kubectlJson<V1Job>(['get', 'job', '-n', ns.name, job.metadata!.name!])).status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True'),
    { description: 'the Job complete (Job controller)', timeoutMs: 60_000 });
  const downloaded = await waitForCondition(ns.name, 'first', 'ModelReady', 'True', 'Downloaded');
  expect(condition(downloaded, 'ModelReady')?.message).toContain(`commit ${hub.repo(REPO).commit.slice(0, 12)}`);
  expect(downloaded.status?.model).toMatchObject({ downloadPercent: 100 });

  // Serving pods now: the claim read-only, no download of their own.
  const dep = await waitFor(() => kubectlJson<V1Deployment>(['get', 'deployment', '-n', ns.name, 'first']), { description: 'Deployment first' });
  expect(dep.spec!.template.spec!.initContainers).toBeUndefined();
  expect(dep.spec!.template.spec!.volumes).toContainEqual({ name: 'model', persistentVolumeClaim: { claimName: 'hf-cache', readOnly: true } });
  expect(dep.spec!.template.spec!.containers[0]!.args).toContain(`/models/${REPO}/main`);
  await kubectl(['patch', 'jd', '-n', ns.name, 'first', '--type=merge', '-p', JSON.stringify({ spec: { scheduling: null } })]);
  await waitForCondition(ns.name, 'first', 'Ready', 'True', 'AllReplicasReady', 90_000);

  const events = await kubectlJson<CoreV1EventList>(['get', 'events', '-n', ns.name, '--field-selector', 'involvedObject.name=first,involvedObject.kind=JambaDeployment']);
  const reasons = events.items.map((e) => e.reason);
  expect(reasons).toEqual(expect.arrayContaining(['DownloadStarted', 'Downloaded']));

  // The same (repo, revision, claim): no second Job, ready from the cache.
  await createJd(ns.name, 'second', { model: { name: MINI, source }, gpusPerReplica: 1 });
  const second = await waitForCondition(ns.name, 'second', 'Ready', 'True', 'AllReplicasReady', 90_000);
  expect(condition(second, 'ModelReady')).toMatchObject({ status: 'True', reason: 'Downloaded' });
  expect((await jobs()).items.map((j) => j.metadata?.name)).toEqual([job.metadata?.name]);

  // Deleting the JambaDeployments leaves the claim (it is the user's).
  await kubectl(['delete', 'jd', '-n', ns.name, 'first', 'second', '--wait=true']);
  await waitFor(async () => (await jobs()).items.length === 0, { description: 'the Job garbage-collected with its owner', timeoutMs: 60_000 });
  expect((await kubectlJson<{ status?: { phase?: string } }>(['get', 'pvc', '-n', ns.name, 'hf-cache'])).status?.phase).toBe('Bound');
}, 240_000);

test('a download pod that fails (a failure another pod may fix) shows its reason while the Job retries it', async () => {
  await createJd(ns.name, 'gated', { model: { name: MINI, source: { huggingFace: { repo: 'ai21labs/gated', cacheClaimName: 'hf-cache' } } }, gpusPerReplica: 1, scheduling: { nodeSelector: { 'jamba.dev/test-hold': 'true' } } });
  const job = await waitFor(async () => (await jobs()).items.find((j) => j.metadata?.annotations?.['serving.jamba.dev/model'] === 'ai21labs/gated@main'), { description: 'the Job' });
  const pod = await waitFor(async () => (await kubectlJson<V1PodList>(['get', 'pods', '-n', ns.name, '-l', `job-name=${job.metadata!.name}`])).items[0] as V1Pod | undefined, { description: 'its pod' });
  // What `jamba-runtime download` writes as its termination message when the Hub stays unreachable, a
  // failure it exits 1 for (another pod may succeed; download-cli.test.ts checks the CLI writes this shape).
  const message = JSON.stringify({ phase: 'Failed', repo: 'ai21labs/gated', revision: 'main', bytesDone: 0, bytesTotal: 0, percent: 0, filesDone: 0, filesTotal: 0, bytesPerSecond: 0, bytesResumed: 0,
    error: { code: 'NetworkError', message: 'ai21labs/gated@main: connect ECONNREFUSED after 8 attempt(s)' }, updatedAt: new Date().toISOString() });
  await patchPodStatus(pod.metadata!.name!, {
    phase: 'Failed',
    containerStatuses: [{ name: 'download', image: 'x', imageID: '', ready: false, restartCount: 0, started: false,
      state: { terminated: { exitCode: 1, reason: 'Error', message, startedAt: new Date().toISOString(), finishedAt: new Date().toISOString() } } }],
  });
  const jd = await waitFor(async () => {
    const j = await getJd(ns.name, 'gated');
    return condition(j, 'ModelReady')?.message.includes('NetworkError: ai21labs/gated@main: connect ECONNREFUSED') ? j : undefined;
  }, { description: 'the failure reason in ModelReady', timeoutMs: 60_000 });
  expect(condition(jd, 'ModelReady')).toMatchObject({ status: 'False', reason: 'Downloading', message: expect.stringMatching(/pod retried 1 time\(s\), last: NetworkError/) });
}, 120_000);
