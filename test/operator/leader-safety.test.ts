// Two real operator processes never write at the same time, even when the leader's lease requests
// hang or fail. Each process reaches the API server through its own proxy (api-proxy.ts), which logs
// every non-lease write it forwarded: when it was sent on and when the API server answered. While the
// JambaDeployments are edited continuously (so the leader always has writes to make), the leader's
// Lease requests are stalled (then, for the next leader, dropped): it must stop writing and exit
// within its renew deadline, before its successor acquires the lease and writes anything. Then a
// leader is killed (SIGKILL) in the middle of reconciling new JambaDeployments.
import { KubeClient } from '../../operator/kube/client.js';
import { RESOURCES, objectPath } from '../../operator/kube/resources.js';
import { addGpuNodes, kubectl, makeKubeConfig, waitFor, withNamespace } from '../harness/cluster.js';
import { startApiProxy, type ApiProxy, type LeaseMode } from './api-proxy.js';
import { deleteAllAndWait, expectAllConverged, expectNoDuplicates } from './chaos-support.js';
import {
  createJd, ensureOperatorBuilt, getJd, installCrd, isLeader, killAll, loggedAt, spawnOperator, waitForCondition, type OperatorProcess,
} from './support.js';

const ns = withNamespace('op-leader-safety');
const running: OperatorProcess[] = [];
const proxies: ApiProxy[] = [];
const NAMES = ['e0', 'e1', 'e2', 'e3'];
const addedNodes: string[] = [];

/** Pins pods to the GPU nodes this file adds, so whatever other files left on the shared nodes cannot starve them. */
let onOwnNodes: Record<string, unknown> = {};

beforeAll(async () => {
  ensureOperatorBuilt();
  await installCrd();
  addedNodes.push(...await addGpuNodes(4, { prefix: 'safety-gpu-node-' }));
  onOwnNodes = { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: addedNodes }] }] } } } };
}, 300_000);

afterAll(async () => {
  // On failure, what the operators said.
  if (process.env.OPERATOR_TEST_LOG) for (const p of running) process.stdout.write(p.lines.join('\n') + '\n');
  killAll(running);
  await Promise.all(proxies.map((p) => p.close()));
  // Free the GPUs before the namespace goes (its deletion is asynchronous): later files need them.
  await deleteAllAndWait(ns.name);
  if (addedNodes.length > 0) await kubectl(['delete', 'node', ...addedNodes, '--wait=false']);
}, 240_000);

async function candidate(name: string): Promise<{ p: OperatorProcess; proxy: ApiProxy }> {
  const proxy = await startApiProxy(name);
  proxies.push(proxy);
  const p = spawnOperator(ns.name, { kubeconfig: proxy.kubeconfig });
  running.push(p);
  await waitFor(() => p.port() !== undefined, { description: `operator ${name} serving metrics` });
  return { p, proxy };
}

/** Edits every JambaDeployment's replicas (1 ↔ 2) every 250 ms until stopped. */
function churn(): { stop: () => Promise<void>; edits: () => number } {
  const client = new KubeClient(makeKubeConfig());
  let stopped = false;
  let edits = 0;
  const loop = (async () => {
    for (let i = 0; !stopped; i++) {
      const name = NAMES[i % NAMES.length]!;
      await client.request({
        method: 'PATCH', path: objectPath(RESOURCES.jambaDeployments, ns.name, name), verb: 'PATCH', resource: 'jambadeployments',
        body: { spec: { replicas: 1 + (Math.floor(i / NAMES.length) % 2) } }, contentType: 'application/merge-patch+json',
      }).then(() => edits++, () => undefined);
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  return { stop: async () => { stopped = true; await loop; client.close(); }, edits: () => edits };
}

/** Every write the old leader sent ended (answered, or cut when it exited) before the new leader's first. */
function expectNoOverlap(old: { p: OperatorProcess; proxy: ApiProxy }, exitedAt: number, next: { proxy: ApiProxy }, faultAt: number): void {
  const oldEnds = old.proxy.writes.map((w) => w.answeredAt ?? exitedAt);
  const lastOld = Math.max(...oldEnds);
  const firstNew = Math.min(...next.proxy.writes.map((w) => w.sentAt));
  process.stdout.write(`leader-safety: old leader's last write ended ${firstNew - lastOld} ms before the new leader's first ` +
    `(${old.proxy.writes.filter((w) => w.sentAt > faultAt).length} writes by the old leader after the fault, ${next.proxy.writes.length} by the new one)\n`);
  expect(next.proxy.writes.length).toBeGreaterThan(0);
  expect(lastOld).toBeLessThan(firstNew);
  // The old leader went on writing after the fault (its term had not ended), so the check had teeth.
  expect(old.proxy.writes.some((w) => w.sentAt > faultAt)).toBe(true);
}

let current: { p: OperatorProcess; proxy: ApiProxy } | undefined;

async function faultAndHandOver(old: { p: OperatorProcess; proxy: ApiProxy }, next: { p: OperatorProcess; proxy: ApiProxy }, mode: LeaseMode) {
  const faultAt = Date.now();
  old.proxy.leases = mode;
  const exit = await old.p.exited;
  const exitedAt = Date.now();
  // It exits on its own, having stopped acting within the renew deadline (7 s) of its last renew.
  expect(exit).toEqual({ code: 1, signal: null });
  expect(old.p.lines.some((l) => l.includes('lost leadership'))).toBe(true);
  expect(exitedAt - faultAt).toBeLessThan(7000 + 2000 + 1500);
  await waitFor(() => isLeader(next.p), { description: 'the standby to lead', timeoutMs: 30_000, intervalMs: 200 });
  const ledAt = loggedAt(next.p, 'became leader')!;
  process.stdout.write(`leader-safety (${mode}): exited ${exitedAt - faultAt} ms after the fault; successor led ${ledAt - exitedAt} ms after that\n`);
  expect(ledAt).toBeGreaterThan(loggedAt(old.p, 'controllers stopped') ?? exitedAt);
  // Let the new leader catch up with the edits, then judge the write logs.
  await waitFor(() => next.proxy.writes.length > 0, { description: 'the new leader to write', timeoutMs: 20_000 });
  expectNoOverlap(old, exitedAt, next, faultAt);
}

test('leader with stalled, then dropped, lease requests: it stops writing and exits before the next leader writes', async () => {
  const a = await candidate('a');
  await waitFor(() => isLeader(a.p), { description: 'operator a to lead', timeoutMs: 30_000 });
  const b = await candidate('b');
  for (const name of NAMES) await createJd(ns.name, name, { gpusPerReplica: 1, scheduling: onOwnNodes });
  // Generous: a file that restarted control-plane components just before leaves their watches in backoff.
  for (const name of NAMES) await waitForCondition(ns.name, name, 'Ready', 'True', undefined, 120_000);

  const edits = churn();
  try {
    await new Promise((r) => setTimeout(r, 1000));
    // a's lease requests hang: its renew attempts time out at the deadline.
    await faultAndHandOver(a, b, 'stall');
    // b's lease requests fail outright; c takes over.
    const c = await candidate('c');
    await new Promise((r) => setTimeout(r, 1000));
    await faultAndHandOver(b, c, 'drop');
    current = c;
  } finally {
    await edits.stop();
  }
  expect(edits.edits()).toBeGreaterThan(40);

  // Nothing was lost on the way: every JambaDeployment converges on its last edit.
  for (const name of NAMES) {
    await waitFor(async () => {
      const jd = await getJd(ns.name, name);
      return jd.status?.observedGeneration === jd.metadata.generation && jd.status?.replicas === jd.spec.replicas;
    }, { description: `jd ${name} to converge`, timeoutMs: 60_000, intervalMs: 500 });
  }
}, 240_000);

test('a leader killed in the middle of reconciling 20 new JambaDeployments: the successor finishes, nothing duplicated', async () => {
  const leader = current!;
  const standby = await candidate('d');
  const writesBefore = leader.proxy.writes.length;
  const names = Array.from({ length: 20 }, (_, i) => `k${String(i).padStart(2, '0')}`);
  const created = Promise.all(names.map((name) => createJd(ns.name, name, { gpusPerReplica: 1, scheduling: onOwnNodes })));
  // Kill it once it has started writing children for the new ones, well before it is done.
  await waitFor(() => leader.proxy.writes.slice(writesBefore).filter((w) => w.method === 'PATCH').length >= 3, { description: 'the leader to start applying', timeoutMs: 30_000, intervalMs: 20 });
  leader.p.child.kill('SIGKILL');
  await leader.p.exited;
  const appliedBeforeKill = leader.proxy.writes.slice(writesBefore).filter((w) => w.method === 'PATCH' && !w.path.includes('/status')).length;
  expect(appliedBeforeKill).toBeLessThan(names.length * 3);
  await created;
  await waitFor(() => isLeader(standby.p), { description: 'the standby to take over', timeoutMs: 20_000, intervalMs: 200 });
  const jds = await expectAllConverged(ns.name);
  expect(jds.filter((jd) => names.includes(jd.metadata.name!))).toHaveLength(names.length);
  await expectNoDuplicates(ns.name, jds);
}, 180_000);
