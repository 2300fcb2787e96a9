// Operator → pod → runtime, for real: a CPU JambaDeployment with the default (locally built) image runs
// on the real node (containerd, kubelet, CNI bridge), turns Ready through the real probes, and answers
// the official `openai` client through its Service's ClusterIP (kube-proxy). kubectl logs, exec and
// port-forward through the API server and the kubelet. Scaling, a rollout under streaming load, bad
// images and flags, and deletion, each on real pods.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type OpenAI from 'openai';
import type { V1Deployment, V1Node, V1PodList } from '@kubernetes/client-node';
import { REAL_NODE, kubeconfigPath, kubectl, kubectlJson, waitFor, withNamespace } from '../harness/cluster.js';
import { clusterDir, toolPath } from '../harness/exec.js';
import { condition, getJd, jdManifest, useInProcessOperator, waitForCondition } from '../operator/support.js';
import { tinyCpuSpec } from './specs.js';
import { nodeContainers, serviceClient, startStreamingLoad } from './support.js';

const ns = withNamespace('e2e-real-node');
useInProcessOperator(ns);

const LOADED_MS = 180_000;

async function apply(name: string, spec: Record<string, unknown>): Promise<void> {
  await kubectl(['apply', '-f', '-'], { input: jdManifest(ns.name, name, spec) });
}

async function pods(name: string): Promise<V1PodList> {
  return kubectlJson<V1PodList>(['-n', ns.name, 'get', 'pods', '-l', `app.kubernetes.io/instance=${name}`]);
}

const client = (name: string, retries = 0): Promise<OpenAI> => serviceClient(ns.name, name, retries);

/** Waits until the Deployment has rolled out to `replicas` ready pods of its newest template, and none other. */
async function rolledOut(name: string, replicas: number): Promise<void> {
  await waitFor(async () => {
    const d = await kubectlJson<V1Deployment>(['-n', ns.name, 'get', 'deployment', name]);
    const s = d.status ?? {};
    const done = (s.observedGeneration ?? 0) >= (d.metadata?.generation ?? 1) && s.updatedReplicas === replicas &&
      s.replicas === replicas && s.readyReplicas === replicas;
    if (!done) return false;
    const list = await pods(name);
    return list.items.filter((p) => !p.metadata?.deletionTimestamp).length === replicas && list.items.length === replicas;
  }, { description: `deployment ${name} rolled out to ${replicas} ready pods`, timeoutMs: LOADED_MS, intervalMs: 500 });
  await waitForCondition(ns.name, name, 'Ready', 'True', undefined, LOADED_MS);
}

describe('a CPU JambaDeployment on the real node', () => {
  const name = 'tiny';

  test('its pod runs on the real node and turns Ready through the real startup and readiness probes; status says so', async () => {
    await apply(name, tinyCpuSpec());
    const jd = await waitForCondition(ns.name, name, 'Ready', 'True', undefined, LOADED_MS);
    expect(jd.status?.readyReplicas).toBe(1);
    const list = await pods(name);
    expect(list.items).toHaveLength(1);
    const pod = list.items[0]!;
    expect(pod.spec?.nodeName).toBe(REAL_NODE);
    expect(pod.spec?.containers[0]!.image).toBe('ghcr.io/jamba-serving/jamba-runtime:0.1.0');
    expect(pod.spec?.containers[0]!.args).toEqual(expect.arrayContaining(['--backend', 'cpu']));
    expect(pod.status?.containerStatuses?.[0]).toMatchObject({ ready: true, started: true, restartCount: 0 });
    expect(pod.status?.containerStatuses?.[0]?.containerID).toMatch(/^containerd:\/\//);
  }, LOADED_MS + 30_000);

  test('the official openai client gets completions and chat completions, streamed and not, through the ClusterIP', async () => {
    const openai = await client(name);
    const models = await openai.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['jamba-tiny']);

    const completion = await openai.completions.create({ model: 'jamba-tiny', prompt: 'Once upon a time', max_tokens: 8, temperature: 0 });
    expect(completion.usage?.completion_tokens).toBe(8);
    expect(completion.choices[0]!.finish_reason).toBe('length');

    let streamed = '';
    let finish: string | null | undefined;
    for await (const chunk of await openai.completions.create({ model: 'jamba-tiny', prompt: 'Once upon a time', max_tokens: 8, temperature: 0, stream: true })) {
      streamed += chunk.choices[0]?.text ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    // Greedy decoding: the stream is token for token the non-streamed answer.
    expect(streamed).toBe(completion.choices[0]!.text);
    expect(finish).toBe('length');

    const chat = await openai.chat.completions.create({ model: 'jamba-tiny', messages: [{ role: 'user', content: 'Tell me about the river.' }], max_tokens: 6, temperature: 0 });
    expect(chat.choices[0]!.message.role).toBe('assistant');
    expect(chat.usage?.completion_tokens).toBe(6);
    let chatStreamed = '';
    for await (const chunk of await openai.chat.completions.create({ model: 'jamba-tiny', messages: [{ role: 'user', content: 'Tell me about the river.' }], max_tokens: 6, temperature: 0, stream: true })) {
      chatStreamed += chunk.choices[0]?.delta?.content ?? '';
    }
    expect(chatStreamed).toBe(chat.choices[0]!.message.content);
  }, 120_000);

  test('kubectl logs shows the runtime\'s startup lines and kubectl exec runs commands in its container', async () => {
    const pod = (await pods(name)).items[0]!.metadata!.name!;
    const lines = (await kubectl(['-n', ns.name, 'logs', pod, '-c', 'runtime'])).split('\n').filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; model?: string });
    expect(lines.find((l) => l.msg === 'listening')).toMatchObject({ model: 'jamba-tiny' });
    expect(lines.map((l) => l.msg)).toContain('model loaded');
    // In the pod's own container: its hostname is the pod's name, its user the image's; stdin goes through.
    expect((await kubectl(['-n', ns.name, 'exec', pod, '-c', 'runtime', '--', 'sh', '-c', 'echo "$(cat /proc/sys/kernel/hostname) $(id -u)"'])).trim()).toBe(`${pod} 65532`);
    expect((await kubectl(['-n', ns.name, 'exec', '-i', pod, '-c', 'runtime', '--', 'wc', '-c'], { input: 'twelve bytes' })).trim()).toBe('12');
  }, 60_000);

  test('kubectl port-forward reaches the runtime in its pod', async () => {
    const pod = (await pods(name)).items[0]!;
    const port = pod.spec!.containers[0]!.ports!.find((p) => p.name === 'http')!.containerPort;
    const forward = spawn(toolPath('kubectl'), ['--kubeconfig', kubeconfigPath(), '-n', ns.name, 'port-forward', `pod/${pod.metadata!.name}`, `:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      forward.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
      const local = await waitFor(() => /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out)?.[1], { description: 'kubectl port-forward listening', timeoutMs: 20_000 });
      const res = await fetch(`http://127.0.0.1:${local}/v1/models`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { data: { id: string }[] }).data.map((m) => m.id)).toEqual(['jamba-tiny']);
    } finally {
      forward.kill('SIGTERM');
    }
  }, 60_000);

  test('the kubelet serves with a certificate from the cluster CA, authenticates and authorizes through the API server', async () => {
    const node = await kubectlJson<V1Node>(['get', 'node', REAL_NODE]);
    const address = node.status!.addresses!.find((a) => a.type === 'InternalIP')!.address;
    const port = node.status!.daemonEndpoints!.kubeletEndpoint!.Port;
    // TLS verified against the cluster CA for the node's address, as the API server verifies it.
    const kubeletGet = (token?: string) => new Promise<number | undefined>((resolve, reject) => {
      https.get({ host: address, port, path: '/pods', ca: readFileSync(path.join(clusterDir, 'pki', 'ca.crt')), headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
        res.resume();
        resolve(res.statusCode);
      }).on('error', reject);
    });
    // No credentials: anonymous, which the kubelet does not allow.
    expect(await kubeletGet()).toBe(401);
    // A ServiceAccount's token: known to the API server (TokenReview), but not allowed nodes/proxy (SubjectAccessReview).
    await kubectl(['-n', ns.name, 'create', 'serviceaccount', 'nobody']);
    expect(await kubeletGet((await kubectl(['-n', ns.name, 'create', 'token', 'nobody'])).trim())).toBe(403);
  });

  test('kubectl scale up and down', async () => {
    await kubectl(['-n', ns.name, 'scale', `jambadeployment/${name}`, '--replicas=2']);
    await rolledOut(name, 2);
    expect((await getJd(ns.name, name)).status?.readyReplicas).toBe(2);
    await kubectl(['-n', ns.name, 'scale', `jambadeployment/${name}`, '--replicas=1']);
    await rolledOut(name, 1);
  }, 2 * LOADED_MS + 30_000);

  test('a spec change rolls out under streaming load with zero failed or cut requests', async () => {
    await kubectl(['-n', ns.name, 'scale', `jambadeployment/${name}`, '--replicas=2']);
    await rolledOut(name, 2);
    const before = new Set((await pods(name)).items.map((p) => p.metadata!.name));

    // As users run it: the client's default retry policy. What a pod going away may cost a client is one
    // retried request that had not started (a kept-alive connection closed under it); never a failed or cut one.
    const load = startStreamingLoad(await client(name, 2), { workers: 2, maxTokens: 24 });
    await waitFor(() => load.completed() >= 4, { description: 'the load to get going', timeoutMs: 60_000 });
    await kubectl(['-n', ns.name, 'patch', 'jambadeployment', name, '--type=merge', '-p', JSON.stringify({ spec: { runtime: { args: ['--max-waiting', '40'] } } })]);
    await rolledOut(name, 2);
    const result = await load.stop();

    const after = (await pods(name)).items;
    expect(after.some((p) => before.has(p.metadata!.name))).toBe(false);
    expect(after.every((p) => p.spec?.containers[0]!.args?.includes('--max-waiting'))).toBe(true);
    expect(result.errors).toEqual([]);
    expect(result.cut).toBe(0);
    expect(result.completed).toBeGreaterThanOrEqual(10);
  }, 3 * LOADED_MS);

  test('deleting the JambaDeployment garbage-collects its children, pods and containers', async () => {
    const uids = (await pods(name)).items.map((p) => p.metadata!.uid!);
    expect(uids.length).toBeGreaterThan(0);
    await kubectl(['-n', ns.name, 'delete', 'jambadeployment', name, '--wait=true']);
    await waitFor(async () => {
      const left = await kubectl(['-n', ns.name, 'get', 'deployments,replicasets,pods,services,poddisruptionbudgets', '-l', `app.kubernetes.io/instance=${name}`, '-o', 'name']);
      return left.trim() === '';
    }, { description: `the children of jd ${name} to be gone`, timeoutMs: LOADED_MS, intervalMs: 500 });
    // The kubelet stops the containers and removes the sandboxes of deleted pods.
    await waitFor(async () => (await nodeContainers(uids)).length === 0, { description: 'the pods\' containers to leave the node', timeoutMs: 120_000, intervalMs: 1000 });
  }, LOADED_MS + 150_000);
});

describe('what goes wrong is said in status, in words a person can act on', () => {
  test('an image that does not exist', async () => {
    await apply('bad-image', tinyCpuSpec({ image: 'localhost:1/jamba-serving/no-such-runtime:0.0.0' }));
    const jd = await waitForCondition(ns.name, 'bad-image', 'Degraded', 'True', 'ImagePullBackOff', LOADED_MS);
    const degraded = condition(jd, 'Degraded')!;
    expect(degraded.message).toContain('localhost:1/jamba-serving/no-such-runtime:0.0.0');
    expect(condition(jd, 'Ready')?.status).toBe('False');
  }, LOADED_MS + 30_000);

  test('a flag the runtime does not know: CrashLoopBackOff with the runtime\'s own error', async () => {
    await apply('bad-flags', tinyCpuSpec({ args: ['--no-such-flag'] }));
    const jd = await waitForCondition(ns.name, 'bad-flags', 'Degraded', 'True', 'CrashLoopBackOff', LOADED_MS);
    const degraded = condition(jd, 'Degraded')!;
    expect(degraded.message).toContain('last exit code 2');
    expect(degraded.message).toContain("Unknown option '--no-such-flag'");
  }, LOADED_MS + 30_000);
});
