// The children a JambaDeployment should have: pure functions from the (defaulted) spec to objects.
import { createHash } from 'node:crypto';
import type {
  V1Affinity, V1Container, V1Deployment, V1Job, V1NodeSelectorRequirement, V1NodeSelectorTerm, V1PodDisruptionBudget,
  V1ResourceRequirements, V1SecurityContext, V1Service, V1Toleration, V1Volume, V1VolumeMount,
} from '@kubernetes/client-node';
import { DEFAULT_RUNTIME_IMAGE, type JambaDeployment, type JambaDeploymentSpec } from '../api/jambadeployment.js';
import { PERMANENT_FAILURE_EXIT_CODE } from '../../runtime/download/errors.js';
import {
  CONTAINER_NAME, DOWNLOAD_ATTEMPT_ANNOTATION, DOWNLOAD_CONTAINER, DOWNLOAD_PROGRESS_PORT, FIELD_MANAGER, GPU_MEMORY_LABEL, GPU_PRODUCT_LABEL,
  MODEL_CACHE_LABEL, MODEL_MOUNT, PORT_NAME, commonLabels, ownerReference, selectorLabels,
} from './labels.js';

/** Seconds the preStop hook waits so endpoints drop the pod before the runtime starts draining. */
export const PRESTOP_SLEEP_SECONDS = 10;
/** Short: a small checkpoint loads in a second or two, and an extra /ready answer costs nothing. */
const STARTUP_PERIOD_SECONDS = 2;
/** Pod retries of a download Job (Kubernetes backs off 10 s, 20 s, 40 s, ... between them). */
export const DOWNLOAD_BACKOFF_LIMIT = 4;
/** The user and group of the runtime image (images/runtime.Dockerfile). */
export const RUNTIME_IMAGE_GID = 65532;
/**
 * The runtime's containers (serving and download) as the restricted Pod Security Standard wants them:
 * non-root, no privilege escalation, no capabilities, the runtime's default seccomp profile, and a
 * read-only root filesystem (they write only to the model volume, /dev/shm and the termination log).
 */
export const RUNTIME_CONTAINER_SECURITY: V1SecurityContext = {
  runAsNonRoot: true,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

/** Cluster-wide choices of the operator's installation (its flags), applied to every JambaDeployment. */
export interface OperatorDefaults {
  /** Replaces the CRD's default runtime image (a JambaDeployment that names another image keeps it). */
  runtimeImage?: string;
}

export function runtimeImage(spec: JambaDeploymentSpec, defaults: OperatorDefaults = {}): string {
  return spec.runtime.image === DEFAULT_RUNTIME_IMAGE && defaults.runtimeImage ? defaults.runtimeImage : spec.runtime.image;
}

/**
 * Replicas the Deployment should run. Autoscaling off: spec.replicas (an HPA or KEDA may drive it through
 * the scale subresource). On: the operator owns the count — the autoscaler's decision (`autoscaled`: its
 * latest, else the one recorded in status.desiredReplicas), spec.replicas before the first — within the bounds.
 */
export function desiredReplicas(spec: JambaDeploymentSpec, autoscaled?: number): number {
  const a = spec.autoscaling;
  if (!a?.enabled) return spec.replicas;
  return Math.min(Math.max(autoscaled ?? spec.replicas, a.minReplicas), a.maxReplicas);
}

interface ModelVolume {
  volumes: V1Volume[];
  mounts: V1VolumeMount[];
  modelPath: string;
  initContainers: V1Container[];
}

function joinPath(...parts: (string | undefined)[]): string {
  return parts.filter((p): p is string => !!p).join('/').replace(/\/+/g, '/').replace(/\/$/, '');
}

type HuggingFaceSource = NonNullable<JambaDeploymentSpec['model']['source']['huggingFace']>;

/** Where a Hugging Face revision lives in the model volume (and in a cache claim shared by JambaDeployments). */
export function huggingFaceModelPath(hf: HuggingFaceSource): string {
  return joinPath(MODEL_MOUNT, hf.repo, hf.revision);
}

/**
 * The runtime image's own downloader (`jamba-runtime download`), writing into the model volume. Into a
 * pod's emptyDir (`into: 'emptyDir'`) it skips the flush to disk, which would only delay the pod's start:
 * after a crash of the node the pod's volume is gone, or the pod's init container runs again and hashes the
 * files of the earlier boot before trusting them. A cache claim, shared and kept, gets flushed files.
 */
export function downloadContainer(spec: JambaDeploymentSpec, defaults: OperatorDefaults = {}, into: 'claim' | 'emptyDir' = 'claim'): V1Container {
  const hf = spec.model.source.huggingFace!;
  const r = spec.runtime;
  return {
    name: DOWNLOAD_CONTAINER,
    image: runtimeImage(spec, defaults),
    ...(r.imagePullPolicy ? { imagePullPolicy: r.imagePullPolicy } : {}),
    command: ['jamba-runtime'],
    args: [
      'download', '--repo', hf.repo, '--revision', hf.revision, '--dir', huggingFaceModelPath(hf),
      '--metrics-port', String(DOWNLOAD_PROGRESS_PORT), '--progress-interval', '10', '--termination-message-path', '/dev/termination-log',
      ...(into === 'emptyDir' ? ['--no-fsync'] : []),
    ],
    env: [
      ...(hf.endpoint ? [{ name: 'HF_ENDPOINT', value: hf.endpoint }] : []),
      ...(hf.tokenSecretRef ? [{ name: 'HF_TOKEN', valueFrom: { secretKeyRef: { name: hf.tokenSecretRef.name, key: hf.tokenSecretRef.key } } }] : []),
    ],
    ports: [{ name: 'progress', containerPort: DOWNLOAD_PROGRESS_PORT, protocol: 'TCP' }],
    // The final progress (or the error) as JSON: the operator reads it from the container status.
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'FallbackToLogsOnError',
    securityContext: RUNTIME_CONTAINER_SECURITY,
    volumeMounts: [{ name: 'model', mountPath: MODEL_MOUNT }],
  };
}

/**
 * The model volume, mounted read-only into the runtime. A Hugging Face source with a cache claim is
 * filled by a download Job (desiredDownloadJob) before any pod starts; without one, each pod downloads
 * into an emptyDir in an init container.
 */
export function modelVolume(spec: JambaDeploymentSpec, defaults: OperatorDefaults = {}): ModelVolume {
  const src = spec.model.source;
  const mounts: V1VolumeMount[] = [{ name: 'model', mountPath: MODEL_MOUNT, readOnly: true }];
  if (src.pvc) {
    return {
      volumes: [{ name: 'model', persistentVolumeClaim: { claimName: src.pvc.claimName, readOnly: true } }],
      mounts, modelPath: joinPath(MODEL_MOUNT, src.pvc.subPath), initContainers: [],
    };
  }
  if (src.hostPath) {
    return {
      volumes: [{ name: 'model', hostPath: { path: src.hostPath.path, type: 'Directory' } }],
      mounts, modelPath: MODEL_MOUNT, initContainers: [],
    };
  }
  const hf = src.huggingFace!;
  const modelPath = huggingFaceModelPath(hf);
  if (hf.cacheClaimName) {
    return { volumes: [{ name: 'model', persistentVolumeClaim: { claimName: hf.cacheClaimName, readOnly: true } }], mounts, modelPath, initContainers: [] };
  }
  return { volumes: [{ name: 'model', emptyDir: {} }], mounts, modelPath, initContainers: [downloadContainer(spec, defaults, 'emptyDir')] };
}

/** Identifies a (repo, revision, claim): JambaDeployments that share it share one download. */
export function modelCacheKey(hf: HuggingFaceSource): string {
  return createHash('sha256').update(`${hf.endpoint ?? ''}\n${hf.repo}\n${hf.revision}\n${hf.cacheClaimName ?? ''}`).digest('hex').slice(0, 16);
}

export function downloadJobName(hf: HuggingFaceSource, attempt: number): string {
  return `jamba-download-${modelCacheKey(hf)}-${attempt}`;
}

/**
 * The Job that fills a cache claim with a Hugging Face revision, once per (repo, revision, claim) in a
 * namespace. Kubernetes retries its pod with exponential backoff (backoffLimit); a Job that still fails
 * is followed by the next attempt after the operator's own backoff (plan.ts). The claim is the user's:
 * it is never created, owned or deleted here.
 */
export function desiredDownloadJob(jd: JambaDeployment, attempt: number, defaults: OperatorDefaults = {}): V1Job | undefined {
  const spec = jd.spec;
  const hf = spec.model.source.huggingFace;
  if (!hf?.cacheClaimName) return undefined;
  const labels = {
    [MODEL_CACHE_LABEL]: modelCacheKey(hf),
    'app.kubernetes.io/name': 'jamba-download',
    'app.kubernetes.io/managed-by': FIELD_MANAGER,
  };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: downloadJobName(hf, attempt), namespace: jd.metadata.namespace, labels,
      annotations: { [DOWNLOAD_ATTEMPT_ANNOTATION]: String(attempt), 'serving.jamba.dev/model': `${hf.repo}@${hf.revision}` },
      ownerReferences: [ownerReference(jd)],
    },
    spec: {
      backoffLimit: DOWNLOAD_BACKOFF_LIMIT,
      // A failure another pod cannot fix (not found, gated, disk full...) fails the Job at once: the status
      // shows it without waiting out the pod backoff, and the operator's next attempt follows its own backoff.
      podFailurePolicy: { rules: [{ action: 'FailJob', onExitCodes: { containerName: DOWNLOAD_CONTAINER, operator: 'In', values: [PERMANENT_FAILURE_EXIT_CODE] } }] },
      template: {
        metadata: { labels: { [MODEL_CACHE_LABEL]: labels[MODEL_CACHE_LABEL] } },
        spec: {
          restartPolicy: 'Never',
          // The runtime image runs as 65532: the group lets it write to claims that support ownership
          // management (a claim that does not must be writable by that user already).
          securityContext: { fsGroup: RUNTIME_IMAGE_GID, fsGroupChangePolicy: 'OnRootMismatch' },
          containers: [downloadContainer(spec, defaults)],
          volumes: [{ name: 'model', persistentVolumeClaim: { claimName: hf.cacheClaimName } }],
          // Wherever the serving pods may run (a node-local claim binds there), but no GPU needed.
          tolerations: podTolerations(spec),
          ...(spec.scheduling?.nodeSelector ? { nodeSelector: spec.scheduling.nodeSelector } : {}),
          ...(spec.scheduling?.priorityClassName ? { priorityClassName: spec.scheduling.priorityClassName } : {}),
        },
      },
    },
  };
}

/** gpusPerReplica 0 runs on the CPU backend in one process; otherwise CUDA split over the replica's GPUs. */
export function onCpu(spec: JambaDeploymentSpec): boolean {
  return spec.gpusPerReplica === 0;
}

function backendArgs(spec: JambaDeploymentSpec): string[] {
  return onCpu(spec) ? ['--backend', 'cpu'] : ['--backend', 'cuda', '--tensor-parallel-size', String(spec.gpusPerReplica)];
}

export function runtimeArgs(spec: JambaDeploymentSpec, modelPath: string): string[] {
  const r = spec.runtime;
  return [
    'serve',
    '--model', modelPath,
    '--host', '0.0.0.0',
    '--port', String(r.port),
    ...backendArgs(spec),
    '--quantization', spec.quantization === 'ExpertsInt8' ? 'expertsint8' : 'none',
    '--max-model-len', String(spec.maxContextLength),
    '--served-model-name', spec.model.name,
    '--drain-timeout', String(r.drainTimeoutSeconds),
    ...(r.maxNumSeqs !== undefined ? ['--max-num-seqs', String(r.maxNumSeqs)] : []),
    ...(r.maxNumBatchedTokens !== undefined ? ['--max-num-batched-tokens', String(r.maxNumBatchedTokens)] : []),
    // An InferencePool's endpoint picker reads vLLM's metric names.
    ...(spec.inferencePool ? ['--vllm-metrics'] : []),
    ...(r.args ?? []),
  ];
}

/** The GPU limit always comes from gpusPerReplica (none on the CPU), whatever runtime.resources says. */
function containerResources(spec: JambaDeploymentSpec): V1ResourceRequirements {
  const user = spec.runtime.resources ?? {};
  if (onCpu(spec)) return { ...user };
  const gpu = { [spec.gpu.resourceName]: String(spec.gpusPerReplica) };
  const requests = user.requests ? { ...user.requests, ...gpu } : undefined;
  return { ...(requests ? { requests } : {}), limits: { ...(user.limits ?? {}), ...gpu } };
}

function gpuRequirements(spec: JambaDeploymentSpec): V1NodeSelectorRequirement[] {
  const reqs: V1NodeSelectorRequirement[] = [
    // Gt is strict, so minMemoryMiB itself must pass.
    { key: GPU_MEMORY_LABEL, operator: 'Gt', values: [String(spec.gpu.minMemoryMiB - 1)] },
  ];
  const products = spec.gpu.products ?? [];
  if (products.length > 0) reqs.push({ key: GPU_PRODUCT_LABEL, operator: 'In', values: [...products] });
  return reqs;
}

/** The user's affinity with the GPU requirements ANDed into each of their node-selector terms (on the CPU: theirs alone). */
export function podAffinity(spec: JambaDeploymentSpec): V1Affinity | undefined {
  const user = spec.scheduling?.affinity ?? {};
  if (onCpu(spec)) return spec.scheduling?.affinity;
  const gpu = gpuRequirements(spec);
  const userTerms = user.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  const terms: V1NodeSelectorTerm[] = userTerms.length === 0
    ? [{ matchExpressions: gpu }]
    : userTerms.map((t) => ({ ...t, matchExpressions: [...(t.matchExpressions ?? []), ...gpu] }));
  return {
    ...user,
    nodeAffinity: {
      ...user.nodeAffinity,
      requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms },
    },
  };
}

export function podTolerations(spec: JambaDeploymentSpec): V1Toleration[] {
  const gpuTaint: V1Toleration[] = onCpu(spec) ? [] : [{ key: spec.gpu.resourceName, operator: 'Exists', effect: 'NoSchedule' }];
  return [...gpuTaint, ...(spec.scheduling?.tolerations ?? [])];
}

/** `{ [key]: value }`, or nothing for an absent value or empty list (so the applied object names no empty field). */
function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  if (value === undefined || (Array.isArray(value) && value.length === 0)) return {};
  return { [key]: value } as Record<K, V>;
}

export function desiredDeployment(jd: JambaDeployment, defaults: OperatorDefaults = {}, replicas = desiredReplicas(jd.spec)): V1Deployment {
  const spec = jd.spec;
  const r = spec.runtime;
  const model = modelVolume(spec, defaults);
  const startupFailures = Math.ceil(r.startupTimeoutSeconds / STARTUP_PERIOD_SECONDS);
  const container: V1Container = {
    name: CONTAINER_NAME,
    image: runtimeImage(spec, defaults),
    ...(r.imagePullPolicy ? { imagePullPolicy: r.imagePullPolicy } : {}),
    command: ['jamba-runtime'],
    args: runtimeArgs(spec, model.modelPath),
    ports: [{ name: PORT_NAME, containerPort: r.port, protocol: 'TCP' }],
    ...(r.env && r.env.length > 0 ? { env: r.env } : {}),
    resources: containerResources(spec),
    // A runtime that exits (bad flags, unreadable checkpoint) explains why in the pod status and ours.
    terminationMessagePolicy: 'FallbackToLogsOnError',
    securityContext: RUNTIME_CONTAINER_SECURITY,
    volumeMounts: [...model.mounts, { name: 'dshm', mountPath: '/dev/shm' }],
    // /ready answers 503 until the weights are loaded: the startup probe gives loading up to
    // startupTimeoutSeconds, and liveness (/health) only starts after it, so loading pods are never killed.
    startupProbe: { httpGet: { path: '/ready', port: PORT_NAME }, periodSeconds: STARTUP_PERIOD_SECONDS, failureThreshold: startupFailures, timeoutSeconds: 5 },
    readinessProbe: { httpGet: { path: '/ready', port: PORT_NAME }, periodSeconds: 5, failureThreshold: 2, timeoutSeconds: 5 },
    livenessProbe: { httpGet: { path: '/health', port: PORT_NAME }, periodSeconds: 10, failureThreshold: 6, timeoutSeconds: 5 },
    // The sleep lets endpoint removal propagate before SIGTERM; the runtime then drains in-flight requests.
    lifecycle: { preStop: { sleep: { seconds: PRESTOP_SLEEP_SECONDS } } },
  };
  const labels = commonLabels(jd);
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: jd.metadata.name, namespace: jd.metadata.namespace, labels, ownerReferences: [ownerReference(jd)] },
    spec: {
      replicas,
      selector: { matchLabels: selectorLabels(jd) },
      // maxSurge 0: a rollout never needs a spare GPU node (docs/adr/0001-rollout-strategy.md).
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } },
      progressDeadlineSeconds: r.startupTimeoutSeconds + 600,
      revisionHistoryLimit: 3,
      template: {
        metadata: { labels },
        spec: {
          ...(model.initContainers.length > 0 ? { initContainers: model.initContainers } : {}),
          containers: [container],
          volumes: [...model.volumes, { name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: '16Gi' } }],
          ...optional('tolerations', podTolerations(spec)),
          ...optional('affinity', podAffinity(spec)),
          ...(spec.scheduling?.nodeSelector ? { nodeSelector: spec.scheduling.nodeSelector } : {}),
          ...(spec.scheduling?.priorityClassName ? { priorityClassName: spec.scheduling.priorityClassName } : {}),
          terminationGracePeriodSeconds: PRESTOP_SLEEP_SECONDS + r.drainTimeoutSeconds + 5,
        },
      },
    },
  };
}

export function desiredService(jd: JambaDeployment): V1Service {
  const s = jd.spec.service;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: jd.metadata.name, namespace: jd.metadata.namespace, labels: commonLabels(jd), ownerReferences: [ownerReference(jd)] },
    spec: {
      type: s.type,
      selector: selectorLabels(jd),
      ports: [{ name: PORT_NAME, port: s.port, targetPort: PORT_NAME, protocol: 'TCP', appProtocol: 'http' }],
    },
  };
}

/** Whether the spec can ever ask for more than one pod (its replicas, or its autoscaler's ceiling). */
export function mayRunSeveralPods(spec: JambaDeploymentSpec): boolean {
  return spec.autoscaling?.enabled ? spec.autoscaling.maxReplicas > 1 : spec.replicas > 1;
}

/**
 * None while the JambaDeployment can have one pod at most: with `maxUnavailable: 1` an eviction may always take
 * that pod, so such a budget guards nothing and only costs the API server an object.
 */
export function desiredPodDisruptionBudget(jd: JambaDeployment): V1PodDisruptionBudget | undefined {
  if (!mayRunSeveralPods(jd.spec)) return undefined;
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: jd.metadata.name, namespace: jd.metadata.namespace, labels: commonLabels(jd), ownerReferences: [ownerReference(jd)] },
    spec: {
      maxUnavailable: 1,
      selector: { matchLabels: selectorLabels(jd) },
      // A pod still loading weights is unready; without this a node drain would wait on it forever.
      unhealthyPodEvictionPolicy: 'AlwaysAllow',
    },
  };
}
