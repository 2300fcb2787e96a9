// Operator benchmark (`make bench-operator`): on the local control plane, create N JambaDeployments at
// once (8 GPUs, 1 replica each, on N added KWOK GPU nodes), measure create → Ready (p50/p99), then
// count the operator's API requests over a quiet minute (should be ~0 per reconcile).
// The baselines (on by default): first, on the same nodes, N plain Deployments of the same pods created
// at once, create → Deployment ready; the ratio of the two is what the operator adds. Then the same with
// the other children the operator makes created beside each Deployment (its Service; a PodDisruptionBudget
// only where it may run several pods, so not for these): what the operator adds beyond the objects it
// must create (the API server allocates Services' ClusterIPs one at a time).
// The 1-minute load average at start and end goes with the figures: the control plane shares the machine.
//
//   node dist/tools/bench/operator-bench.js [--count 100] [--quiet-seconds 60] [--baseline=false] [--workers 32] [--kubeconfig .cluster/kubeconfig] [--keep]
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { KubeConfig, makeInformer, type KubernetesListObject, type KubernetesObject, type V1Deployment } from '@kubernetes/client-node';
import { API_VERSION, KIND, type JambaDeployment } from '../../operator/api/jambadeployment.js';
import { CRD_FILE } from '../../operator/api/crd.js';
import { withSpecDefaults } from '../../operator/api/defaults.js';
import { desiredDeployment, desiredPodDisruptionBudget, desiredService } from '../../operator/controller/desired.js';
import { DEFAULT_WORKERS, Operator } from '../../operator/controller/operator.js';
import { KubeClient } from '../../operator/kube/client.js';
import { RESOURCES, collectionPath } from '../../operator/kube/resources.js';
import { createLogger } from '../../operator/observability/logger.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const NODE_PREFIX = 'bench-gpu-node-';
const LARGE_SPEC = { model: { name: 'ai21labs/AI21-Jamba-1.5-Large', source: { hostPath: { path: '/var/lib/jamba/large' } } }, gpusPerReplica: 8, replicas: 1 };

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status})`);
  return r.stdout;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)]!;
}

function isReady(jd: JambaDeployment): boolean {
  return jd.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true && jd.status.observedGeneration === jd.metadata.generation;
}

/**
 * When each object of a collection first met `test`, by name (ms since the epoch), as this process's
 * own watch sees it: millisecond resolution, where the objects' API timestamps have 1 s.
 */
async function firstSeen<T extends KubernetesObject>(kubeConfig: KubeConfig, client: KubeClient, path: string, tests: Record<string, (o: T) => boolean>) {
  const seen = Object.fromEntries(Object.keys(tests).map((k) => [k, new Map<string, number>()]));
  const watch = makeInformer<T>(kubeConfig, path, () => client.request<KubernetesListObject<T>>({ method: 'GET', path, verb: 'LIST', resource: 'bench' }));
  const onChange = (o: T) => {
    const now = Date.now();
    for (const [k, test] of Object.entries(tests)) if (!seen[k]!.has(o.metadata!.name!) && test(o)) seen[k]!.set(o.metadata!.name!, now);
  };
  watch.on('add', onChange);
  watch.on('update', onChange);
  await watch.start();
  return { seen, stop: () => watch.stop() };
}

const deploymentReady = (d: V1Deployment) => (d.status?.readyReplicas ?? 0) >= 1 && d.status?.observedGeneration === d.metadata?.generation;

function p50Of(xs: number[]): number {
  return percentile([...xs].sort((a, b) => a - b), 50);
}

/** p50 (seconds) of: create → the operator's Deployment seen, → that Deployment ready (control plane + KWOK), → status Ready (operator). */
function breakdown(createdAt: Map<string, number>, deploymentSeen: Map<string, number>, deploymentReadyAt: Map<string, number>, readyAt: Map<string, number>) {
  const phases = { createToDeploymentApplied: [] as number[], deploymentToReady: [] as number[], deploymentReadyToStatusReady: [] as number[] };
  for (const [name, created] of createdAt) {
    const [applied, depReady, ready] = [deploymentSeen.get(name), deploymentReadyAt.get(name), readyAt.get(name)];
    if (applied === undefined || depReady === undefined || ready === undefined) continue;
    phases.createToDeploymentApplied.push((applied - created) / 1000);
    phases.deploymentToReady.push((depReady - applied) / 1000);
    phases.deploymentReadyToStatusReady.push((ready - depReady) / 1000);
  }
  return { createToDeploymentApplied: p50Of(phases.createToDeploymentApplied), deploymentToReady: p50Of(phases.deploymentToReady), deploymentReadyToStatusReady: p50Of(phases.deploymentReadyToStatusReady) };
}

/** Create → ready latencies (seconds, sorted) as p50 / p90 / p99 / max. */
function latencySummary(sorted: number[]) {
  return { p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: sorted.at(-1) };
}

/**
 * A baseline: `count` plain Deployments with the pods the operator would make (its own builders, no
 * owner), created at once in a namespace of their own; create → Deployment ready (its ready replica
 * seen by a watch). With `children`, each also gets the other children the operator makes (a Service, and a
 * PodDisruptionBudget where it would make one), sent with its Deployment, and counts as ready once all are in and the Deployment is
 * ready: the objects a JambaDeployment costs the control plane, without the operator. The namespace is
 * deleted, and its pods gone, before this returns.
 */
async function plainDeployments(kubeConfig: KubeConfig, kubectl: (...a: string[]) => string, count: number, children: boolean) {
  const ns = `jamba-bench-plain-${randomBytes(3).toString('hex')}`;
  kubectl('create', 'namespace', ns);
  const client = new KubeClient(kubeConfig);
  const path = collectionPath(RESOURCES.deployments, ns);
  const createdAt = new Map<string, number>();
  const childrenInAt = new Map<string, number>();
  const watch = await firstSeen<V1Deployment>(kubeConfig, client, path, { ready: deploymentReady });
  const deploymentReadyAt = watch.seen.ready!;
  const t0 = Date.now();
  await Promise.all(Array.from({ length: count }, async (_, i) => {
    const name = `plain-${String(i).padStart(3, '0')}`;
    const jd = { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace: ns, uid: 'none' }, spec: withSpecDefaults(LARGE_SPEC as never) } as JambaDeployment;
    const pdb = children ? desiredPodDisruptionBudget(jd) : undefined;
    const objects = [
      { path, resource: 'deployments', body: desiredDeployment(jd) as KubernetesObject },
      ...(children ? [{ path: collectionPath(RESOURCES.services, ns), resource: 'services', body: desiredService(jd) as KubernetesObject }] : []),
      ...(pdb ? [{ path: collectionPath(RESOURCES.podDisruptionBudgets, ns), resource: 'poddisruptionbudgets', body: pdb as KubernetesObject }] : []),
    ];
    for (const o of objects) delete o.body.metadata!.ownerReferences;
    createdAt.set(name, Date.now());
    await Promise.all(objects.map((o) => client.request({ method: 'POST', path: o.path, verb: 'CREATE', resource: o.resource, body: o.body })));
    childrenInAt.set(name, Date.now());
  }));
  const readyAt = () => new Map([...deploymentReadyAt].map(([name, t]) => [name, Math.max(t, childrenInAt.get(name) ?? Infinity)] as const));
  const deadline = Date.now() + 10 * 60_000;
  while (deploymentReadyAt.size < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  const allReadyMs = Date.now() - t0;
  const latencies = [...readyAt()].map(([name, t]) => (t - createdAt.get(name)!) / 1000).sort((a, b) => a - b);
  await watch.stop();
  client.close();
  console.error(`bench: baseline${children ? ' with the operator\'s other children' : ''} done (${deploymentReadyAt.size}/${count} ready); deleting its namespace`);
  kubectl('delete', 'namespace', ns, '--wait=true', '--timeout=300s');
  return {
    deployments: count,
    withOperatorChildren: children,
    ready: deploymentReadyAt.size,
    createToReadySeconds: latencySummary(latencies),
    allReadySeconds: allReadyMs / 1000,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: '100' },
      'quiet-seconds': { type: 'string', default: '60' },
      kubeconfig: { type: 'string', default: path.join(root, '.cluster', 'kubeconfig') },
      keep: { type: 'boolean', default: false },
      baseline: { type: 'string', default: 'true' },
      workers: { type: 'string', default: String(DEFAULT_WORKERS) },
    },
  });
  const count = Number(values.count);
  // Other work on the machine (other checkouts' tests) slows the control plane: say how busy it was.
  const loadAtStart = loadavg();
  const quietSeconds = Number(values['quiet-seconds']);
  if (!Number.isInteger(count) || count < 1) throw new Error(`--count must be a positive integer, not ${values.count}`);
  const workers = Number(values.workers);
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`--workers must be a positive integer, not ${values.workers}`);
  const kubectl = (...args: string[]) => sh(path.join(root, '.tools', 'bin', 'kubectl'), ['--kubeconfig', values.kubeconfig!, ...args]);

  console.error(`bench: cluster up (no-op when already up); ${count} extra 8-GPU KWOK nodes`);
  sh('bash', ['tools/cluster/up.sh']);
  sh('bash', ['tools/cluster/add-nodes.sh', String(count)], { GPU_NODE_PREFIX: NODE_PREFIX });
  kubectl('apply', '--server-side', '--force-conflicts', '-f', path.join(root, CRD_FILE));
  kubectl('wait', '--for=condition=Established', 'crd/jambadeployments.serving.jamba.dev');
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(values.kubeconfig!);
  const baseline = values.baseline === 'true' ? await plainDeployments(kubeConfig, kubectl, count, false) : undefined;
  const childrenBaseline = values.baseline === 'true' ? await plainDeployments(kubeConfig, kubectl, count, true) : undefined;
  const ns = `jamba-bench-${randomBytes(3).toString('hex')}`;
  kubectl('create', 'namespace', ns);

  const operator = new Operator({
    kubeConfig, namespace: ns, leaderElection: { namespace: ns }, workers,
    logger: createLogger({ level: 'warn', write: (l) => process.stderr.write(l + '\n') }),
  });
  await operator.start();
  await operator.whenControllersStarted();
  const m = operator.metrics;
  const requests = () => m.apiRequestCount({ verbs: ['GET', 'LIST', 'CREATE', 'UPDATE', 'PATCH', 'DELETE'], excludeResources: ['leases'] });
  const writes = () => m.apiRequestCount({ verbs: ['CREATE', 'UPDATE', 'PATCH', 'DELETE'], excludeResources: ['leases'] });
  const leaseRequests = () => m.apiRequestCount({ verbs: ['GET', 'CREATE', 'UPDATE'], excludeResources: ['jambadeployments', 'jambadeployments/status', 'deployments', 'services', 'poddisruptionbudgets', 'pods', 'events'] });
  const reconciles = async () => (await m.reconciles.get()).values.reduce((s, v) => s + v.value, 0);
  const byCall = () => m.apiRequestsByCall();

  // The benchmark's own watch (a separate client, not counted) records when each one turns Ready.
  const createdAt = new Map<string, number>();
  const client = new KubeClient(kubeConfig);
  const jdPath = collectionPath(RESOURCES.jambaDeployments, ns);
  const jdWatch = await firstSeen<JambaDeployment>(kubeConfig, client, jdPath, { ready: isReady });
  const readyAt = jdWatch.seen.ready!;
  // Their Deployments: when the operator's apply shows, and when the control plane has its pod ready.
  const depWatch = await firstSeen<V1Deployment>(kubeConfig, client, collectionPath(RESOURCES.deployments, ns), { seen: () => true, ready: deploymentReady });

  const before = { requests: await requests(), writes: await writes(), reconciles: await reconciles(), byCall: await byCall() };
  console.error(`bench: creating ${count} JambaDeployments in ${ns}`);
  const t0 = Date.now();
  await Promise.all(Array.from({ length: count }, async (_, i) => {
    const name = `jd-${String(i).padStart(3, '0')}`;
    const body = { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace: ns }, spec: LARGE_SPEC };
    createdAt.set(name, Date.now());
    await client.request({ method: 'POST', path: jdPath, verb: 'CREATE', resource: 'jambadeployments', body });
  }));
  const createdMs = Date.now() - t0;

  const deadline = Date.now() + 10 * 60_000;
  let queueDepthMax = 0;
  while (readyAt.size < count && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    queueDepthMax = Math.max(queueDepthMax, (await m.queueDepth.get()).values[0]?.value ?? 0);
  }
  const allReadyMs = Date.now() - t0;
  const latencies = [...readyAt].map(([name, t]) => (t - createdAt.get(name)!) / 1000).sort((a, b) => a - b);
  const durations = (await m.reconcileDuration.get()).values;
  const reconcileSeconds = { sum: durations.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0, count: durations.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0 };
  const afterCreate = { requests: await requests(), writes: await writes(), reconciles: await reconciles(), byCall: await byCall() };
  const phases = breakdown(createdAt, depWatch.seen.seen!, depWatch.seen.ready!, readyAt);

  console.error(`bench: all Ready; waiting 5 s, then counting requests over a quiet ${quietSeconds} s`);
  await new Promise((r) => setTimeout(r, 5000));
  const q0 = { requests: await requests(), writes: await writes(), reconciles: await reconciles(), lease: await leaseRequests() };
  await new Promise((r) => setTimeout(r, quietSeconds * 1000));
  const q1 = { requests: await requests(), writes: await writes(), reconciles: await reconciles(), lease: await leaseRequests() };

  // The JambaDeployments' latency over a baseline's, at p50 and p99.
  const ratioTo = (b: { createToReadySeconds: { p50: number; p99: number } }) => ({
    p50: percentile(latencies, 50) / b.createToReadySeconds.p50, p99: percentile(latencies, 99) / b.createToReadySeconds.p99,
  });
  const result = {
    date: new Date().toISOString(),
    machine: `${cpus().length} CPU cores (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}`,
    loadAverage1m: { start: loadAtStart[0], end: loadavg()[0] },
    jambaDeployments: count,
    gpusPerReplica: 8,
    workers,
    createAllSeconds: createdMs / 1000,
    ready: readyAt.size,
    createToReadySeconds: latencySummary(latencies),
    allReadySeconds: allReadyMs / 1000,
    // The same pods as plain Deployments, on the same nodes, just before: what the operator adds.
    ...(baseline ? {
      baselinePlainDeployments: baseline,
      ratioToBaseline: ratioTo(baseline),
    } : {}),
    // The same pods with the same other children, created directly: what the operator adds beyond
    // the objects it has to create.
    ...(childrenBaseline ? {
      baselineWithOperatorChildren: childrenBaseline,
      ratioToChildrenBaseline: ratioTo(childrenBaseline),
    } : {}),
    // Where the time goes (p50 over the JambaDeployments, as this process's watches saw it).
    phasesP50Seconds: phases,
    rampUp: {
      reconciles: afterCreate.reconciles - before.reconciles,
      apiRequests: afterCreate.requests - before.requests,
      apiWrites: afterCreate.writes - before.writes,
      queueDepthMax,
      meanReconcileSeconds: reconcileSeconds.count > 0 ? reconcileSeconds.sum / reconcileSeconds.count : 0,
      requestsPerJambaDeployment: (afterCreate.requests - before.requests) / count,
      perJambaDeploymentByCall: Object.fromEntries(Object.entries(afterCreate.byCall)
        .map(([k, v]) => [k, (v - (before.byCall[k] ?? 0)) / count] as const).filter(([, v]) => v > 0)),
    },
    quiet: {
      seconds: quietSeconds,
      reconciles: q1.reconciles - q0.reconciles,
      apiRequests: q1.requests - q0.requests,
      apiWrites: q1.writes - q0.writes,
      apiRequestsPerReconcile: q1.reconciles - q0.reconciles === 0 ? 0 : (q1.requests - q0.requests) / (q1.reconciles - q0.reconciles),
      leaderLeaseRequests: q1.lease - q0.lease,
    },
  };
  console.log(JSON.stringify(result, null, 2));

  await jdWatch.stop();
  await depWatch.stop();
  await operator.stop();
  client.close();
  if (!values.keep) {
    console.error('bench: cleaning up (namespace, bench nodes)');
    kubectl('delete', 'namespace', ns, '--wait=false');
    const nodes = kubectl('get', 'nodes', '-o', 'name').split('\n').filter((n) => n.startsWith(`node/${NODE_PREFIX}`));
    if (nodes.length > 0) kubectl('delete', ...nodes, '--wait=false');
  }
  if (readyAt.size < count) {
    console.error(`bench: only ${readyAt.size}/${count} became Ready within 10 minutes`);
    process.exitCode = 1;
  }
}

main().catch((e: unknown) => {
  console.error(`operator-bench: ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
});
