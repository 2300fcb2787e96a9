// What the chaos tests check after each fault: every JambaDeployment converged (Ready, status of its
// latest generation and its replicas), exactly one Deployment and Service per JambaDeployment (and one
// PDB where it may run several pods) and no stray pods; plus the faults the harness lacks (etcd
// compaction, so old watches get 410 Gone).
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { KubernetesListObject, KubernetesObject, V1Deployment, V1Node, V1Pod } from '@kubernetes/client-node';
import type { JambaDeployment } from '../../operator/api/jambadeployment.js';
import { mayRunSeveralPods } from '../../operator/controller/desired.js';
import { clusterDir } from '../harness/exec.js';
import { kubectl, kubectlJson, waitFor } from '../harness/cluster.js';

const ownerUid = (o: KubernetesObject) => o.metadata?.ownerReferences?.find((r) => r.controller)?.uid;

/** Waits until every JambaDeployment in `namespace` is Ready for its latest generation with all replicas updated and ready. */
export async function expectAllConverged(namespace: string, timeoutMs = 120_000): Promise<JambaDeployment[]> {
  return waitFor(async () => {
    const jds = (await kubectlJson<KubernetesListObject<JambaDeployment>>(['get', 'jambadeployments', '-n', namespace])).items;
    const deps = (await kubectlJson<KubernetesListObject<V1Deployment>>(['get', 'deployments', '-n', namespace])).items;
    const behind = jds.filter((jd) => {
      const d = deps.find((x) => ownerUid(x) === jd.metadata.uid);
      const ready = jd.status?.conditions?.find((c) => c.type === 'Ready');
      return !(ready?.status === 'True' && jd.status?.observedGeneration === jd.metadata.generation && jd.status?.readyReplicas === jd.spec.replicas &&
        d?.status?.observedGeneration === d?.metadata?.generation && d?.status?.updatedReplicas === jd.spec.replicas && d?.status?.readyReplicas === jd.spec.replicas);
    });
    if (behind.length === 0) return jds;
    // Said on timeout: which ones, what their status says, and what the cluster shows (the Deployment, its pods and their nodes).
    const pods = (await kubectlJson<KubernetesListObject<V1Pod>>(['get', 'pods', '-n', namespace])).items;
    const nodes = (await kubectlJson<KubernetesListObject<V1Node>>(['get', 'nodes'])).items;
    const ready = (conditions: { type: string; status: string }[] | undefined) => conditions?.find((c) => c.type === 'Ready')?.status ?? '?';
    throw new Error(`${behind.length} not converged, e.g. ${behind.slice(0, 3).map((jd) => {
      const c = jd.status?.conditions?.filter((x) => x.status === 'True' || x.type === 'Ready').map((x) => `${x.type}=${x.status}/${x.reason}: ${x.message}`).join('; ');
      const d = deps.find((x) => ownerUid(x) === jd.metadata.uid);
      const mine = pods.filter((p) => p.metadata?.labels?.['serving.jamba.dev/jambadeployment'] === jd.metadata.name).map((p) => {
        const node = nodes.find((n) => n.metadata?.name === p.spec?.nodeName);
        return `${p.metadata?.name} ready=${ready(p.status?.conditions)}${p.metadata?.deletionTimestamp ? ' deleting' : ''} on ${p.spec?.nodeName ?? '(none)'} (node ready=${ready(node?.status?.conditions)})`;
      });
      return `${jd.metadata.name} (generation ${jd.metadata.generation}, observed ${jd.status?.observedGeneration}): ${c}; ` +
        `Deployment ${d ? `generation ${d.metadata?.generation}, observed ${d.status?.observedGeneration}, ready ${d.status?.readyReplicas ?? 0}/${d.spec?.replicas}` : 'missing'}; pods: ${mine.join(', ') || 'none'}`;
    }).join(' | ')}`);
  }, { description: `every JambaDeployment in ${namespace} to converge`, timeoutMs, intervalMs: 1000 });
}

/**
 * Exactly one Deployment and Service controlled by each JambaDeployment, and one PDB by each that may run
 * several pods (none by the others); running pods = replicas.
 */
export async function expectNoDuplicates(namespace: string, jds: JambaDeployment[]): Promise<void> {
  const several = jds.filter((jd) => mayRunSeveralPods(jd.spec));
  for (const [kind, expected] of [['deployments', jds], ['services', jds], ['poddisruptionbudgets', several]] as const) {
    const items = (await kubectlJson<KubernetesListObject<KubernetesObject>>(['get', kind, '-n', namespace])).items;
    const owners = items.map(ownerUid);
    expect(owners.length).toBe(expected.length);
    expect(new Set(owners).size).toBe(expected.length);
    for (const jd of expected) expect(owners).toContain(jd.metadata.uid);
  }
  await waitFor(async () => {
    const pods = (await kubectlJson<KubernetesListObject<V1Pod>>(['get', 'pods', '-n', namespace])).items.filter((p) => !p.metadata?.deletionTimestamp);
    return jds.every((jd) => pods.filter((p) => p.metadata?.labels?.['serving.jamba.dev/jambadeployment'] === jd.metadata.name).length === jd.spec.replicas);
  }, { description: 'one running pod per replica, no strays', timeoutMs: 60_000, intervalMs: 1000 });
}

function etcd<T>(api: string, body: unknown): Promise<T> {
  const port = /^ETCD_PORT=(\d+)$/m.exec(readFileSync(path.join(clusterDir, 'cluster.env'), 'utf8'))?.[1];
  const pki = (f: string) => readFileSync(path.join(clusterDir, 'pki', f));
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port: Number(port), method: 'POST', path: api,
      ca: pki('ca.crt'), cert: pki('apiserver-etcd-client.crt'), key: pki('apiserver-etcd-client.key'),
    }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => {
        if (res.statusCode === 200) resolve(JSON.parse(text) as T);
        else reject(new Error(`etcd ${api}: ${res.statusCode} ${text}`));
      });
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** Compacts etcd's history up to now: a watch resumed from any earlier resourceVersion gets 410 Gone. */
export async function compactEtcd(): Promise<number> {
  const { header } = await etcd<{ header: { revision: string } }>('/v3/kv/range', { key: Buffer.from('/').toString('base64') });
  await etcd('/v3/kv/compaction', { revision: header.revision, physical: true });
  return Number(header.revision);
}

/**
 * Deletes every JambaDeployment in `namespace` and waits until their pods are gone, so the GPUs they
 * held on the shared KWOK nodes are free for the test files that follow.
 */
export async function deleteAllAndWait(namespace: string): Promise<void> {
  await kubectl(['delete', 'jambadeployments', '--all', '-n', namespace, '--wait=true', '--timeout=120s']);
  await waitFor(async () => (await kubectlJson<KubernetesListObject<V1Pod>>(['get', 'pods', '-n', namespace])).items.length === 0,
    { description: `the pods in ${namespace} to be gone`, timeoutMs: 120_000, intervalMs: 1000 });
}
