// Helpers for the operator's cluster tests: the CRD, JambaDeployment manifests, the operator run
// in-process (most tests) or as the real CLI in a child process (leader election, SIGTERM).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import type { JambaDeployment } from '../../operator/api/jambadeployment.js';
import { CRD_FILE, CRD_NAME } from '../../operator/api/crd.js';
import { Operator } from '../../operator/controller/operator.js';
import { createLogger } from '../../operator/observability/logger.js';
import type { ModelProgressReader } from '../../operator/model/progress-reader.js';
import { repoRoot, run } from '../harness/exec.js';
import { kubeconfigPath, kubectl, kubectlJson, makeKubeConfig, namespaceReport, waitFor } from '../harness/cluster.js';

/** Applies the generated CRD (server-side, so test files racing to apply it do not conflict). */
export async function installCrd(): Promise<void> {
  await waitFor(async () => {
    await kubectl(['apply', '--server-side', '--force-conflicts', '--field-manager=jamba-tests', '-f', path.join(repoRoot, CRD_FILE)]);
    await kubectl(['wait', '--for=condition=Established', '--timeout=30s', `crd/${CRD_NAME}`]);
    return true;
  }, { description: `CRD ${CRD_NAME} established`, timeoutMs: 60_000, intervalMs: 1000 });
}

/**
 * Installs a third-party API's CRDs from its Go module at the pinned version (tools/monitoring/third-party-crds.sh:
 * prometheus-operator, inference-extension), server-side, and waits until they are served.
 */
export async function installThirdPartyCrds(name: 'prometheus-operator' | 'inference-extension'): Promise<void> {
  const files = (await run('bash', ['tools/monitoring/third-party-crds.sh', name])).stdout.trim().split('\n');
  await kubectl(['apply', '--server-side', '--force-conflicts', '--field-manager=jamba-tests', ...files.flatMap((f) => ['-f', f])]);
  for (const f of files) await kubectl(['wait', '--for=condition=Established', '--timeout=60s', '-f', f]);
}

export const MINI = 'ai21labs/AI21-Jamba-1.5-Mini';
export const LARGE = 'ai21labs/AI21-Jamba-1.5-Large';

export function jdManifest(namespace: string, name: string, spec: Record<string, unknown> = {}): string {
  return stringify({
    apiVersion: 'serving.jamba.dev/v1alpha1',
    kind: 'JambaDeployment',
    metadata: { name, namespace },
    // hostPath: KWOK pods never mount anything, while a PVC would need a bound volume to schedule.
    spec: { model: { name: MINI, source: { hostPath: { path: '/var/lib/jamba/mini' } } }, ...spec },
  });
}

export async function createJd(namespace: string, name: string, spec: Record<string, unknown> = {}): Promise<void> {
  await kubectl(['create', '-f', '-'], { input: jdManifest(namespace, name, spec) });
}

/** `kubectl create` that must fail; resolves with the API server's message. */
export async function createJdRejected(namespace: string, name: string, spec: Record<string, unknown>): Promise<string> {
  try {
    await createJd(namespace, name, spec);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error(`the API server accepted jd ${namespace}/${name} with spec ${JSON.stringify(spec)}`);
}

export function getJd(namespace: string, name: string): Promise<JambaDeployment> {
  return kubectlJson<JambaDeployment>(['get', 'jambadeployment', '-n', namespace, name]);
}

export function condition(jd: JambaDeployment, type: string) {
  return jd.status?.conditions?.find((c) => c.type === type);
}

/** Waits until condition `type` has `status` (and `reason`, when given); returns the JambaDeployment. */
/** On timeout the error reports the namespace's objects and events, and what `more` adds (the test's own view). */
export function waitForCondition(namespace: string, name: string, type: string, status: 'True' | 'False', reason?: string, timeoutMs = 60_000, more?: () => string): Promise<JambaDeployment> {
  return waitFor(async () => {
    const jd = await getJd(namespace, name);
    const c = condition(jd, type);
    return c?.status === status && (reason === undefined || c.reason === reason) && jd.status?.observedGeneration === jd.metadata.generation ? jd : undefined;
  }, {
    description: `jd ${namespace}/${name} ${type}=${status}${reason ? `/${reason}` : ''}`, timeoutMs, intervalMs: 500,
    diagnose: async () => `${await namespaceReport(namespace)}${more ? `\n${more()}` : ''}`,
  });
}

/** The operator in this process, watching one namespace; its log lines are kept for failure reports. */
export function startInProcessOperator(namespace: string, o: { leaderElection?: boolean; modelReader?: ModelProgressReader } = {}): { operator: Operator; logs: string[]; ready: Promise<void> } {
  const logs: string[] = [];
  const operator = new Operator({
    kubeConfig: makeKubeConfig(),
    namespace,
    leaderElection: o.leaderElection ? { namespace } : false,
    workers: 2,
    logger: createLogger({ level: 'debug', write: (l) => logs.push(l) }),
    ...(o.modelReader ? { modelReader: o.modelReader } : {}),
  });
  const ready = operator.start().then(() => operator.whenControllersStarted());
  return { operator, logs, ready };
}

/**
 * Call at a test file's top level: installs the CRD and runs an in-process operator on `ns` for the
 * file's tests (started before them, stopped after). Read `.operator` and `.logs` inside tests.
 */
export function useInProcessOperator(ns: { readonly name: string }, afterStop?: (logs: string[]) => void, options: { modelReader?: ModelProgressReader } = {}): { readonly operator: Operator; readonly logs: string[] } {
  let started: ReturnType<typeof startInProcessOperator> | undefined;
  beforeAll(async () => {
    await installCrd();
    started = startInProcessOperator(ns.name, options);
    await started.ready;
  });
  afterAll(async () => {
    await started?.operator.stop();
    if (!started) return;
    afterStop?.(started.logs);
    // OPERATOR_TEST_LOG=FILE keeps the operator's JSON log of the file's run (appended: one file per run of several).
    if (process.env.OPERATOR_TEST_LOG) appendFileSync(process.env.OPERATOR_TEST_LOG, started.logs.join('\n') + '\n');
  });
  return {
    get operator() {
      if (!started) throw new Error('the operator starts in beforeAll; use it inside tests');
      return started.operator;
    },
    get logs() {
      return started?.logs ?? [];
    },
  };
}

/** Writes the operator made, apart from its lease renewals. */
export function operatorWrites(operator: Operator): Promise<number> {
  return operator.metrics.apiRequestCount({ verbs: ['CREATE', 'UPDATE', 'PATCH', 'DELETE'], excludeResources: ['leases'] });
}

/** Every request apart from watches and the lease (reads included). */
export function operatorRequests(operator: Operator): Promise<number> {
  return operator.metrics.apiRequestCount({ verbs: ['GET', 'LIST', 'CREATE', 'UPDATE', 'PATCH', 'DELETE'], excludeResources: ['leases'] });
}

export async function reconciles(operator: Operator): Promise<number> {
  const m = await operator.metrics.reconciles.get();
  return m.values.reduce((sum, v) => sum + v.value, 0);
}

/** Waits until the operator has had nothing to do for `quietMs` (no reconcile): the world is at rest. */
export async function settle(operator: Operator, quietMs = 3000): Promise<void> {
  let last = await reconciles(operator);
  let since = Date.now();
  await waitFor(async () => {
    const now = await reconciles(operator);
    if (now !== last) {
      last = now;
      since = Date.now();
    }
    return Date.now() - since >= quietMs;
  }, { description: 'the operator to settle', timeoutMs: 60_000, intervalMs: 100 });
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

export const OPERATOR_MAIN = path.join(repoRoot, 'dist', 'operator', 'cmd', 'main.js');

/** `make test` builds first; a test run on its own builds the CLI when dist/ is missing or older than the sources. */
export function ensureOperatorBuilt(): void {
  let built = 0;
  try {
    built = statSync(OPERATOR_MAIN).mtimeMs;
  } catch {
    built = 0;
  }
  if (built >= newestMtime(path.join(repoRoot, 'operator'))) return;
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: repoRoot, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building the operator failed: ${r.stdout}${r.stderr}`);
}

export interface OperatorProcess {
  child: ChildProcess;
  lines: string[];
  identity: () => string | undefined;
  port: () => number | undefined;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * The real CLI (`jamba-operator`) in a child process, leader election on, scoped to `namespace`;
 * `kubeconfig` reaches the API server another way (through a proxy), `args` are added, `env` is merged.
 */
export function spawnOperator(namespace: string, o: { kubeconfig?: string; args?: string[]; env?: NodeJS.ProcessEnv } = {}): OperatorProcess {
  const child = spawn(process.execPath, [OPERATOR_MAIN, '--kubeconfig', o.kubeconfig ?? kubeconfigPath(), '--namespace', namespace, '--metrics-addr', '127.0.0.1:0', '--leader-elect=true', ...(o.args ?? [])], {
    cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...o.env },
  });
  const lines: string[] = [];
  let buffer = '';
  const onData = (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    const parts = buffer.split('\n');
    buffer = parts.pop() ?? '';
    lines.push(...parts.filter((l) => l.length > 0));
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const field = (msg: string, key: string) => {
    for (const l of lines) {
      try {
        const j = JSON.parse(l) as Record<string, unknown>;
        if (j.msg === msg) return j[key];
      } catch {
        // not a JSON line
      }
    }
    return undefined;
  };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    child, lines, exited,
    identity: () => field('jamba-operator started', 'identity') as string | undefined,
    port: () => field('serving /metrics, /healthz, /readyz', 'port') as number | undefined,
  };
}

export async function scrape(port: number, path = '/metrics'): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

export function metricValue(body: string, name: string): number | undefined {
  const line = body.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

/** Whether the operator process says it leads (its jamba_operator_is_leader gauge). */
export async function isLeader(p: OperatorProcess): Promise<boolean> {
  const port = p.port();
  if (port === undefined || p.child.exitCode !== null || p.child.signalCode !== null) return false;
  try {
    return metricValue((await scrape(port)).body, 'jamba_operator_is_leader') === 1;
  } catch {
    return false;
  }
}

/** When the process logged `msg` first (its JSON `time`), in ms since the epoch. */
export function loggedAt(p: OperatorProcess, msg: string): number | undefined {
  for (const l of p.lines) {
    try {
      const j = JSON.parse(l) as { msg?: string; time?: string };
      if (j.msg === msg && j.time) return Date.parse(j.time);
    } catch {
      // not a JSON line
    }
  }
  return undefined;
}

/** Kills what is still running of `processes` (SIGKILL), for afterAll. */
export function killAll(processes: OperatorProcess[]): void {
  for (const p of processes) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
}
