// Autoscaling benchmark (`make bench-autoscaling`): a compressed square-wave load on one JambaDeployment,
// run three ways — the built-in autoscaler on, autoscaling off at min replicas, off at max — and compared.
//
// What is real: the local control plane, the operator (in this process, its scrape source, decision,
// status and pod-deletion-cost marks), the Deployment/ReplicaSet controllers, and `jamba-runtime serve`
// processes (tiny fixture model, CPU) that serve every request. What stands in: the pods are KWOK pods on
// a KWOK GPU node (no GPU here), so this script plays each one: when a pod turns Ready it starts a runtime
// process for it (its start-up is the replica's start-up), routes requests to it round-robin as a Service
// would, and SIGTERMs it (the runtime drains) when the pod goes. The operator reads each pod's metrics at
// that runtime through its pod-address override, the one thing changed for this script.
//
// Reported per run: offered and served tokens/s, failed requests, request latency (p50, p99),
// replica-seconds, direction changes of
// the desired count (flaps), and for each rising edge the reaction time split into decision (load step →
// desired count raised) and startup (raised → the new replica serving).
//
//   node dist/tools/bench/autoscaling-bench.js [--seconds 120] [--cycles 3] [--low-rps 1] [--high-rps 8]
//     [--max-tokens 32] [--target 60] [--min 1] [--max 4] [--modes on,min,max] [--live] [--kubeconfig .cluster/kubeconfig]
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const execFileAsync = promisify(execFile);
import { KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { CRD_FILE } from '../../operator/api/crd.js';
import type { JambaDeployment } from '../../operator/api/jambadeployment.js';
import { Operator } from '../../operator/controller/operator.js';
import { createLogger } from '../../operator/observability/logger.js';
import { repoRoot, startRuntimeProcess, type RuntimeProcess } from './runtime-process.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '120' },
    cycles: { type: 'string', default: '3' },
    'low-rps': { type: 'string', default: '1' },
    'high-rps': { type: 'string', default: '8' },
    'max-tokens': { type: 'string', default: '32' },
    target: { type: 'string', default: '60' },
    min: { type: 'string', default: '1' },
    max: { type: 'string', default: '4' },
    modes: { type: 'string', default: 'on,min,max' },
    /** Print a readable line every second while it runs (the live demo: `make demo-autoscaling`). */
    live: { type: 'boolean', default: false },
    kubeconfig: { type: 'string', default: path.join(repoRoot, '.cluster', 'kubeconfig') },
  },
});
const SECONDS = Number(values.seconds);
const CYCLES = Number(values.cycles);
const LOW = Number(values['low-rps']);
const HIGH = Number(values['high-rps']);
const MAX_TOKENS = Number(values['max-tokens']);
const TARGET = Number(values.target);
const MIN = Number(values.min);
const MAX = Number(values.max);
const PERIOD = SECONDS / CYCLES;
const FIXTURE = path.join(repoRoot, 'test', 'fixtures', 'jamba-tiny');

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, { cwd: repoRoot, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status})`);
  return r.stdout;
}
const KUBECTL = path.join(repoRoot, '.tools', 'bin', 'kubectl');
const kubectl = (...args: string[]) => sh(KUBECTL, ['--kubeconfig', values.kubeconfig!, ...args]);
/** kubectl without blocking the event loop (the load generator runs on it). */
const kubectlAsync = async (...args: string[]) => (await execFileAsync(KUBECTL, ['--kubeconfig', values.kubeconfig!, ...args], { maxBuffer: 64 * 1024 * 1024 })).stdout;
/** What the pods' preStop sleep does, compressed: the endpoint is gone from the routing before the runtime drains. */
const PRESTOP_MS = 2000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Requests per second offered at t seconds into the run: low first, then high, each half a period. */
const rpsAt = (t: number) => (Math.floor(t / (PERIOD / 2)) % 2 === 1 ? HIGH : LOW);

interface Replica { runtime?: RuntimeProcess; starting?: Promise<void>; servingAt?: number }

type Mode = 'on' | 'min' | 'max';

async function run(mode: Mode, node: string) {
  const ns = `jamba-bench-as-${mode}-${randomBytes(2).toString('hex')}`;
  kubectl('create', 'namespace', ns);
  const replicas = new Map<string, Replica>();
  const routable = () => [...replicas.values()].filter((r) => r.servingAt !== undefined).map((r) => r.runtime!);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(values.kubeconfig!);
  const operator = new Operator({
    kubeConfig, namespace: ns, leaderElection: false, workers: 2, logger: createLogger({ level: 'warn' }),
    autoscaling: {
      intervalMs: 2000,
      // The bench's stand-in for pod IPs: the runtime process playing the pod, once it serves.
      podAddress: (pod) => {
        const r = replicas.get(pod.metadata?.name ?? '');
        return r?.servingAt !== undefined ? `${r.runtime!.host}:${r.runtime!.port}` : undefined;
      },
    },
  });
  await operator.start();
  const autoscaling = mode === 'on'
    ? { enabled: true, minReplicas: MIN, maxReplicas: MAX, targetTokensPerSecondPerReplica: TARGET, metricsWindowSeconds: 10, scaleDownStabilizationSeconds: Math.round(PERIOD / 2) }
    : { enabled: false };
  const jd = {
    apiVersion: 'serving.jamba.dev/v1alpha1', kind: 'JambaDeployment', metadata: { name: 'bench', namespace: ns },
    spec: {
      model: { name: 'jamba-tiny', source: { hostPath: { path: '/models/jamba-tiny' } } }, gpusPerReplica: 1, maxContextLength: 1024,
      replicas: mode === 'max' ? MAX : MIN, autoscaling, scheduling: { nodeSelector: { 'kubernetes.io/hostname': node } },
    },
  };
  const applied = spawnSync(path.join(repoRoot, '.tools', 'bin', 'kubectl'), ['--kubeconfig', values.kubeconfig!, 'apply', '-f', '-'], { input: JSON.stringify(jd), encoding: 'utf8' });
  if (applied.status !== 0) throw new Error(`applying the JambaDeployment failed: ${applied.stderr}`);

  // Pods → runtime processes.
  let tracking = true;
  const stopping: Promise<void>[] = [];
  const track = (async () => {
    while (tracking) {
      const pods = (JSON.parse(await kubectlAsync('get', 'pods', '-n', ns, '-o', 'json')) as { items: V1Pod[] }).items;
      const live = new Set<string>();
      for (const p of pods) {
        const name = p.metadata!.name!;
        const ready = !p.metadata?.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
        if (!ready) continue;
        live.add(name);
        if (!replicas.has(name)) {
          const r: Replica = {};
          replicas.set(name, r);
          r.starting = startRuntimeProcess(['--model', FIXTURE, '--max-num-seqs', '4', '--drain-timeout', '10']).then((rp) => {
            r.runtime = rp;
            r.servingAt = Date.now();
          });
        }
      }
      for (const [name, r] of replicas) {
        if (live.has(name)) continue;
        replicas.delete(name);
        // The pod is going: it leaves the routing, then (after the preStop sleep) its runtime drains on SIGTERM.
        stopping.push(r.starting!.then(() => sleep(PRESTOP_MS)).then(() => r.runtime?.stop()));
      }
      await sleep(500);
    }
  })();

  // Wait for the starting replicas to serve.
  const want = mode === 'max' ? MAX : MIN;
  for (let k = 0; routable().length < want; k++) {
    if (k > 600) throw new Error(`${mode}: ${want} replicas never served`);
    await sleep(200);
  }

  // The load: open loop, requests of MAX_TOKENS generated tokens, round-robin over the serving replicas.
  const started = Date.now();
  let offered = 0;
  let served = 0;
  let failed = 0;
  let next = 0;
  const latencies: number[] = [];
  const inFlight = new Set<Promise<void>>();
  const timeline: Array<{ t: number; rps: number; desired?: number; serving: number }> = [];
  let replicaSeconds = 0;
  const sender = (async () => {
    // An absolute schedule, so a busy event loop delays requests but does not drop them from the offer.
    let nextAt = started;
    for (;;) {
      const t = (nextAt - started) / 1000;
      if (t >= SECONDS) break;
      const targets = routable();
      offered += MAX_TOKENS;
      const r = targets[next++ % Math.max(targets.length, 1)];
      const p = (async () => {
        if (!r) return void failed++;
        const sentAt = Date.now();
        try {
          const res = await fetch(`${r.url}/v1/completions`, {
            method: 'POST', headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ prompt: 'Hello', max_tokens: MAX_TOKENS, ignore_eos: true }),
          });
          const body = (await res.json()) as { usage?: { completion_tokens?: number } };
          if (res.status === 200) {
            served += body.usage?.completion_tokens ?? 0;
            latencies.push((Date.now() - sentAt) / 1000);
          } else failed++;
        } catch {
          failed++;
        }
      })();
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
      nextAt += 1000 / rpsAt(t);
      await sleep(Math.max(0, nextAt - Date.now()));
    }
  })();
  const sampler = (async () => {
    let previous = Date.now();
    while (Date.now() - started < SECONDS * 1000) {
      const t = (Date.now() - started) / 1000;
      replicaSeconds += routable().length * (Date.now() - previous) / 1000;
      previous = Date.now();
      const desired = (JSON.parse(await kubectlAsync('get', 'jd', 'bench', '-n', ns, '-o', 'json')) as JambaDeployment).status?.desiredReplicas;
      timeline.push({ t, rps: rpsAt(t), desired, serving: routable().length });
      if (values.live && timeline.length % 2 === 0) printLive(t, desired, served, failed);
      await sleep(500);
    }
  })();
  let lastReason = '';
  let servedBefore = 0;
  let tBefore = 0;
  /** One line per second: load, replicas, tokens/s offered and served, failures, each new decision with its reason. */
  function printLive(t: number, desired: number | undefined, servedNow: number, failedNow: number) {
    const tokS = (servedNow - servedBefore) / Math.max(t - tBefore, 0.001);
    [servedBefore, tBefore] = [servedNow, t];
    console.error(`${t.toFixed(0).padStart(4)} s  offered ${String(rpsAt(t) * MAX_TOKENS).padStart(4)} tok/s  served ${tokS.toFixed(0).padStart(4)} tok/s  ` +
      `replicas desired ${desired ?? '-'} serving ${routable().length}  failed ${failedNow}`);
    void kubectlAsync('get', 'jd', 'bench', '-n', ns, '-o', 'json').then((out) => {
      const d = (JSON.parse(out) as JambaDeployment).status?.scalingDecisions?.at(-1);
      const line = d ? `${d.from} → ${d.to} ${d.reason}: ${d.message}` : '';
      if (line && line !== lastReason) console.error(`        decision ${d!.time}: ${line}`);
      lastReason = line;
    }, () => undefined);
  }
  await Promise.all([sender, sampler]);
  await Promise.all([...inFlight]);
  const elapsed = (Date.now() - started) / 1000;

  // Reaction per rising edge: the first raise of desired after it, then the first new replica serving after that.
  const reactions: Array<{ decision: number; startup: number }> = [];
  for (let c = 0; c < CYCLES; c++) {
    const edge = c * PERIOD + PERIOD / 2;
    const before = timeline.filter((s) => s.t < edge).at(-1);
    const raised = timeline.find((s) => s.t >= edge && s.t < edge + PERIOD / 2 && s.desired !== undefined && before?.desired !== undefined && s.desired > before.desired);
    if (!raised) continue;
    const up = timeline.find((s) => s.t >= raised.t && s.serving > (before?.serving ?? 0));
    reactions.push({ decision: raised.t - edge, startup: up ? up.t - raised.t : NaN });
  }
  let flaps = 0;
  let last = 0;
  const desiredSeries = timeline.map((s) => s.desired).filter((d): d is number => d !== undefined);
  for (let k = 1; k < desiredSeries.length; k++) {
    const d = Math.sign(desiredSeries[k]! - desiredSeries[k - 1]!);
    if (d === 0) continue;
    if (last !== 0 && d !== last) flaps++;
    last = d;
  }
  const status = (JSON.parse(kubectl('get', 'jd', 'bench', '-n', ns, '-o', 'json')) as JambaDeployment).status;

  tracking = false;
  await track;
  await operator.stop();
  await Promise.all([...stopping, ...[...replicas.values()].map((r) => r.starting?.then(() => r.runtime?.stop()))]);
  kubectl('delete', 'namespace', ns, '--wait=false');
  return {
    mode, seconds: Math.round(elapsed),
    offeredTokS: +(offered / elapsed).toFixed(1), servedTokS: +(served / elapsed).toFixed(1), failed,
    latencyP50S: +median(latencies).toFixed(2), latencyP99S: +[...latencies].sort((a, b) => a - b)[Math.max(0, Math.ceil(latencies.length * 0.99) - 1)]!.toFixed(2),
    replicaSeconds: Math.round(replicaSeconds), flaps, maxDesired: Math.max(...desiredSeries),
    reactionDecisionS: reactions.map((r) => +r.decision.toFixed(1)), reactionStartupS: reactions.map((r) => +r.startup.toFixed(1)),
    decisionMedianS: +median(reactions.map((r) => r.decision)).toFixed(1), startupMedianS: +median(reactions.map((r) => r.startup)).toFixed(1),
    lastDecisions: status?.scalingDecisions?.slice(-3).map((d) => `${d.time} ${d.from}→${d.to} ${d.reason}`),
  };
}

async function main() {
  kubectl('apply', '--server-side', '-f', path.join(repoRoot, CRD_FILE));
  kubectl('wait', '--for=condition=Established', 'crd/jambadeployments.serving.jamba.dev', '--timeout=60s');
  const [node] = sh('bash', ['tools/cluster/add-nodes.sh', '1'], { GPU_NODE_PREFIX: `bench-as-gpu-${randomBytes(2).toString('hex')}-` }).split('\n').filter(Boolean);
  const results = [];
  try {
    for (const mode of values.modes!.split(',') as Mode[]) {
      console.error(`bench: autoscaling ${mode}: ${SECONDS} s, ${CYCLES} cycles of ${LOW}/${HIGH} req/s × ${MAX_TOKENS} tokens`);
      const r = await run(mode, node!);
      console.error(JSON.stringify(r));
      results.push(r);
    }
  } finally {
    kubectl('delete', 'node', node!, '--wait=false');
  }
  console.log(JSON.stringify({
    date: new Date().toISOString(), machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`,
    load: { seconds: SECONDS, cycles: CYCLES, lowRps: LOW, highRps: HIGH, maxTokens: MAX_TOKENS },
    autoscaling: { min: MIN, max: MAX, targetTokensPerSecondPerReplica: TARGET, intervalSeconds: 2, metricsWindowSeconds: 10, scaleDownStabilizationSeconds: Math.round(PERIOD / 2) },
    results,
  }, null, 1));
}

main().then(() => process.exit(0), (e: unknown) => {
  console.error(e);
  process.exit(1);
});
