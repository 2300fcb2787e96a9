// What every cluster test uses: the local cluster's kubeconfig, the built kubectl and helm, a namespace
// of its own per test file, polling, and control-plane faults (API-server restart, more nodes).
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { clusterDir, run, runClusterScript, toolPath } from './exec.js';

/** The taint on the KWOK CPU node (tools/cluster/nodes.sh): pods that tolerate it may land there and run as KWOK fakes. */
export const KWOK_CPU_TOLERATION = { key: 'jamba.dev/kwok-cpu-node', operator: 'Exists', effect: 'NoSchedule' } as const;
/** Node affinity for pods that only KWOK should run (fake images): never the real node. */
export const KWOK_ONLY = {
  nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'type', operator: 'In', values: ['kwok'] }] }] } },
};
/** The node where pods run for real (tools/cluster/node.sh), and its sandbox image, always present there. */
export const REAL_NODE = 'real-node';
export const PAUSE_IMAGE = 'localhost/jamba-serving/pause:1';

export function kubeconfigPath(): string {
  return path.join(clusterDir, 'kubeconfig');
}

export function makeKubeConfig(): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath());
  return kc;
}

/** Runs the built kubectl against the local cluster; resolves with stdout, rejects with stderr. */
export async function kubectl(args: readonly string[], options: { input?: string } = {}): Promise<string> {
  const { stdout } = await run(toolPath('kubectl'), ['--kubeconfig', kubeconfigPath(), ...args], options);
  return stdout;
}

/** `kubectl ... -o json`, parsed. */
export async function kubectlJson<T = unknown>(args: readonly string[]): Promise<T> {
  return JSON.parse(await kubectl([...args, '-o', 'json'])) as T;
}

/** Runs the built helm against the local cluster. */
export async function helm(args: readonly string[]): Promise<string> {
  const { stdout } = await run(toolPath('helm'), ['--kubeconfig', kubeconfigPath(), ...args]);
  return stdout;
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** What is awaited, for the timeout error: "pod x to be Running". */
  description: string;
  /** On timeout, what the world looked like (objects, events), appended to the error: a flake explains itself. */
  diagnose?: () => Promise<string>;
}

/**
 * Polls `predicate` until it returns a value other than undefined, null or false, and returns that value.
 * A predicate that throws is retried; on timeout the last error is the cause.
 */
export async function waitFor<T>(
  predicate: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  { timeoutMs = 30_000, intervalMs = 250, description, diagnose }: WaitOptions,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await predicate();
      if (value !== undefined && value !== null && value !== false) return value;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const detail = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
      const report = diagnose ? `\n${await diagnose().catch((e: Error) => `(diagnosis failed: ${e.message})`)}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}${detail}${report}`, { cause: lastError });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * What a namespace holds, for a timeout's report: its JambaDeployments' conditions, Jobs, pods with their
 * containers' states, and the latest events (each section's last 40 lines).
 */
export async function namespaceReport(namespace: string): Promise<string> {
  const section = async (title: string, args: string[]) =>
    `--- ${title}\n${await kubectl(['-n', namespace, ...args]).catch((e: Error) => `(${e.message})`)}`;
  const podStates = '{range .items[*]}{.metadata.name}{" "}{.status.phase}{" "}{range .status.initContainerStatuses[*]}init:{.name}={.state}{" "}{end}{range .status.containerStatuses[*]}{.name}={.state}{" "}{end}{"\\n"}{end}';
  const conditions = '{range .items[*]}{.metadata.name}{": "}{range .status.conditions[*]}{.type}={.status}/{.reason}: {.message}{"; "}{end}{"\\n"}{end}';
  return (await Promise.all([
    section('JambaDeployments', ['get', 'jambadeployments', '-o', `jsonpath=${conditions}`]),
    section('Jobs', ['get', 'jobs', '-o', 'wide']),
    section('pods', ['get', 'pods', '-o', `jsonpath=${podStates}`]),
    section('events (the latest)', ['get', 'events', '--sort-by=.lastTimestamp']),
  ])).map((s) => s.split('\n').slice(-40).join('\n')).join('\n');
}

/** A namespace `<prefix>-<random>`, ready for pods (its default ServiceAccount exists). */
export async function createTestNamespace(prefix: string, { readyTimeoutMs = 30_000 } = {}): Promise<string> {
  const base = prefix.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 50) || 'test';
  const name = `${base}-${randomBytes(3).toString('hex')}`;
  const core = makeKubeConfig().makeApiClient(k8s.CoreV1Api);
  try {
    await core.createNamespace({ body: { metadata: { name, labels: { 'jamba.dev/test-namespace': 'true' } } } });
  } catch (cause) {
    throw new Error(`creating test namespace ${name}`, { cause });
  }
  await waitFor(() => core.readNamespacedServiceAccount({ name: 'default', namespace: name }), {
    timeoutMs: readyTimeoutMs,
    description: `the default ServiceAccount in namespace ${name}`,
  });
  return name;
}

/** Deletes a namespace; its contents go in the background (the namespace controller). */
export async function deleteTestNamespace(name: string): Promise<void> {
  const core = makeKubeConfig().makeApiClient(k8s.CoreV1Api);
  try {
    await core.deleteNamespace({ name });
  } catch (cause) {
    throw new Error(`deleting test namespace ${name}`, { cause });
  }
}

/**
 * Call at a test file's top level (or in a describe): creates the namespace before the file's tests
 * and deletes it after them. Read `.name` inside tests and hooks.
 */
export function withNamespace(prefix: string): { readonly name: string } {
  let name: string | undefined;
  beforeAll(async () => {
    name = await createTestNamespace(prefix);
  });
  afterAll(async () => {
    if (name !== undefined) await deleteTestNamespace(name);
  });
  return {
    get name(): string {
      if (name === undefined) throw new Error(`namespace for '${prefix}' is not created yet: read it inside a test or hook`);
      return name;
    },
  };
}

/** Stops kube-apiserver and starts it again with the same flags; resolves once it is ready. */
export async function restartApiServer(options: { downtimeMs?: number } = {}): Promise<void> {
  const downtimeS = ((options.downtimeMs ?? 0) / 1000).toFixed(3);
  await runClusterScript('restart-apiserver.sh', [], { env: { RESTART_DOWNTIME_S: downtimeS } });
}

export interface GpuNodeOptions {
  /** Node name prefix; numbering continues after the highest existing `<prefix><n>`. Default gpu-node-. */
  prefix?: string;
  gpusPerNode?: number;
  /** nvidia.com/gpu.product label, e.g. NVIDIA-A100-SXM4-80GB. */
  product?: string;
  /** nvidia.com/gpu.memory label in MiB. */
  memoryMiB?: number;
  family?: string;
}

/** Adds `count` KWOK GPU nodes and waits until they are Ready. Returns their names. */
export async function addGpuNodes(count: number, options: GpuNodeOptions = {}): Promise<string[]> {
  const env: NodeJS.ProcessEnv = {};
  if (options.prefix !== undefined) env.GPU_NODE_PREFIX = options.prefix;
  if (options.gpusPerNode !== undefined) env.GPUS_PER_NODE = String(options.gpusPerNode);
  if (options.product !== undefined) env.GPU_PRODUCT = options.product;
  if (options.memoryMiB !== undefined) env.GPU_MEMORY_MIB = String(options.memoryMiB);
  if (options.family !== undefined) env.GPU_FAMILY = options.family;
  const { stdout } = await runClusterScript('add-nodes.sh', [String(count)], { env });
  return stdout.split('\n').filter((line) => line.length > 0);
}
