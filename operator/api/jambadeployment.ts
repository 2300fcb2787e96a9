// The JambaDeployment API: the one source of truth. The CRD YAML (crds/) is generated from these
// declarations (generate-crd.ts) and the TypeScript types below are inferred from them.
import type { V1Affinity, V1EnvVar, V1ObjectMeta, V1ResourceRequirements, V1Toleration } from '@kubernetes/client-node';
import { cpuModelRule, memoryFitRule } from './memory-fit-rule.js';
import {
  array, boolean, embedded, enumOf, integer, number, object, required, string, stringMap, withDefault, withRules,
  type TypeOf,
} from './schema-builder.js';

export const GROUP = 'serving.jamba.dev';
export const VERSION = 'v1alpha1';
export const KIND = 'JambaDeployment';
export const PLURAL = 'jambadeployments';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const MAX_CONTEXT_LENGTH = 262144;
/** 0 runs the replica on the CPU backend (development clusters, tests); otherwise its GPUs = tensor-parallel degree. */
export const GPU_COUNTS = [0, 1, 2, 4, 8] as const;
/** The CRD's default runtime image; the operator's --default-runtime-image replaces it. */
export const DEFAULT_RUNTIME_IMAGE = 'ghcr.io/jamba-serving/jamba-runtime:0.1.0';

const localObjectName = () => string({ minLength: 1, maxLength: 253 });

const pvcSource = object(
  {
    claimName: required(localObjectName()),
    subPath: string({ description: 'Directory inside the volume that holds the checkpoint.', maxLength: 1024 }),
  },
  { description: 'A PersistentVolumeClaim holding the checkpoint (mounted read-only).' },
);

const hostPathSource = object(
  { path: required(string({ minLength: 1, maxLength: 1024, pattern: '^/' })) },
  { description: 'A directory on every GPU node holding the checkpoint (mounted read-only).' },
);

const huggingFaceSource = object(
  {
    repo: required(string({ minLength: 1, maxLength: 253, description: 'e.g. ai21labs/AI21-Jamba-1.5-Mini' })),
    revision: withDefault(string({ maxLength: 253 }), 'main'),
    tokenSecretRef: object(
      { name: required(localObjectName()), key: withDefault(string({ maxLength: 253 }), 'token') },
      { description: 'Secret with a Hugging Face token, exposed to the downloader as HF_TOKEN.' },
    ),
    endpoint: string({
      maxLength: 1024, pattern: '^https?://',
      description: 'Hub endpoint (HF_ENDPOINT), for a mirror; default https://huggingface.co.',
    }),
    cacheClaimName: string({
      maxLength: 253,
      description:
        'PVC (yours; never deleted) to download into: a Job downloads each (repo, revision) once, pods start after it and mount the claim read-only. ' +
        'Without it, every pod downloads into an emptyDir in an init container.',
    }),
  },
  { description: 'Download from the Hugging Face Hub with the runtime image (`jamba-runtime download`) before the runtime starts.' },
);

const modelSource = object(
  { pvc: pvcSource, hostPath: hostPathSource, huggingFace: huggingFaceSource },
  {
    description: 'Where the checkpoint comes from: exactly one of pvc, hostPath, huggingFace.',
    rules: [
      {
        rule: "(has(self.pvc) ? 1 : 0) + (has(self.hostPath) ? 1 : 0) + (has(self.huggingFace) ? 1 : 0) == 1",
        message: 'model.source must set exactly one of pvc, hostPath or huggingFace',
        reason: 'FieldValueInvalid',
      },
    ],
  },
);

const model = object({
  name: required(string({ minLength: 1, maxLength: 253, description: 'Model id served to clients, e.g. ai21labs/AI21-Jamba-1.5-Large.' })),
  source: required(modelSource),
});

const gpu = object({
  resourceName: withDefault(string({ maxLength: 253, description: 'Extended resource of the GPUs.' }), 'nvidia.com/gpu'),
  minMemoryMiB: withDefault(
    integer({
      minimum: 1, maximum: 16 * 1024 * 1024,
      description: 'Nodes must report at least this much memory per GPU (label nvidia.com/gpu.memory, MiB). H100 80GB reports 81559.',
    }),
    80000,
  ),
  products: array(string({ maxLength: 253 }), {
    maxItems: 32, listType: 'set',
    description: 'Allowed values of the nvidia.com/gpu.product node label; empty means any.',
  }),
});

const window = (what: string, def: number) =>
  withDefault(integer({ minimum: 0, maximum: 3600, description: `Seconds of ${what} stabilization.` }), def);

const autoscaling = object(
  {
    enabled: withDefault(boolean(), false),
    minReplicas: withDefault(integer({ minimum: 0, maximum: 1000 }), 1),
    maxReplicas: withDefault(integer({ minimum: 1, maximum: 1000 }), 1),
    targetTokensPerSecondPerReplica: integer({ minimum: 1, description: 'Generated tokens/s one replica should carry.' }),
    scaleUpStabilizationSeconds: window('scale-up', 0),
    scaleDownStabilizationSeconds: window('scale-down', 300),
    metricsWindowSeconds: withDefault(integer({ minimum: 10, maximum: 3600, description: 'Tokens/s are counter increases over this many seconds.' }), 60),
    tokens: withDefault(
      enumOf(['Generation', 'PromptAndGeneration'] as const, { description: 'Which tokens count: generated only (default), or prompt + generated.' }),
      'Generation',
    ),
    prometheusUrl: string({
      maxLength: 2048, pattern: '^https?://',
      description: "Read the replicas' metrics from this Prometheus HTTP API instead of scraping each pod (overrides the operator's --prometheus-url).",
    }),
  },
  {
    description:
      'Built-in autoscaling on tokens per second: while enabled the operator owns the replica count (docs/AUTOSCALING.md). ' +
      'When off, spec.replicas (and the scale subresource, for an HPA or KEDA) rules.',
    rules: [
      {
        rule: 'self.minReplicas <= self.maxReplicas',
        message: 'autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas',
        reason: 'FieldValueInvalid',
      },
      {
        rule: '!self.enabled || has(self.targetTokensPerSecondPerReplica)',
        message: 'autoscaling.targetTokensPerSecondPerReplica is required when autoscaling is enabled',
        reason: 'FieldValueRequired',
      },
    ],
  },
);

const runtime = object({
  image: withDefault(string({ minLength: 1, maxLength: 1024 }), DEFAULT_RUNTIME_IMAGE),
  imagePullPolicy: enumOf(['Always', 'IfNotPresent', 'Never'] as const),
  args: array(string({ maxLength: 4096 }), { maxItems: 64, description: 'Extra arguments appended to `jamba-runtime serve`.' }),
  env: embedded<V1EnvVar[]>('array'),
  resources: embedded<V1ResourceRequirements>('object', {
    description: 'CPU/memory for the runtime container; the GPU limit always comes from gpusPerReplica (none when 0).',
  }),
  port: withDefault(integer({ minimum: 1, maximum: 65535 }), 8000),
  maxNumSeqs: integer({ minimum: 1, maximum: 4096, description: 'Sequences batched at once (runtime --max-num-seqs).' }),
  maxNumBatchedTokens: integer({
    minimum: 1,
    maximum: 1048576,
    description: 'Tokens one engine step may run (runtime --max-num-batched-tokens): smaller prefill chunks lower inter-token latency for some throughput.',
  }),
  startupTimeoutSeconds: withDefault(
    integer({ minimum: 60, maximum: 86400, description: 'How long weight loading may take before the pod is restarted.' }),
    3600,
  ),
  drainTimeoutSeconds: withDefault(
    integer({ minimum: 0, maximum: 3600, description: 'How long a terminating pod keeps serving in-flight requests.' }),
    120,
  ),
});

const inferencePool = object(
  {
    endpointPicker: required(object(
      {
        name: required(string({ minLength: 1, maxLength: 253, description: 'Service of the endpoint picker (EPP) that routes to this pool.' })),
        port: withDefault(integer({ minimum: 1, maximum: 65535, description: "The EPP's ext-proc port." }), 9002),
        failureMode: withDefault(enumOf(['FailOpen', 'FailClose'] as const, { description: 'What the gateway does when the EPP does not answer.' }), 'FailClose'),
      },
      { description: 'The endpoint picker the pool names (deployed with the Gateway API Inference Extension).' },
    )),
  },
  {
    description:
      'Expose the pods as a Gateway API Inference Extension InferencePool (inference.networking.k8s.io/v1) named after the JambaDeployment. ' +
      "Its pods then also export vLLM's metric names, which the endpoint picker reads.",
  },
);

const scheduling = object({
  nodeSelector: stringMap(),
  tolerations: embedded<V1Toleration[]>('array', { description: 'Added to the GPU taint toleration.' }),
  affinity: embedded<V1Affinity>('object', { description: 'Merged with the GPU node affinity the operator derives.' }),
  priorityClassName: string({ maxLength: 253 }),
});

const service = object({
  type: withDefault(enumOf(['ClusterIP', 'NodePort', 'LoadBalancer'] as const), 'ClusterIP'),
  port: withDefault(integer({ minimum: 1, maximum: 65535 }), 8000),
});

export const specField = withRules(
  object({
    model: required(model),
    quantization: withDefault(enumOf(['ExpertsInt8', 'None'] as const, { description: 'ExpertsInt8 quantizes MoE experts and MLPs to int8 at load time.' }), 'ExpertsInt8'),
    maxContextLength: withDefault(integer({ minimum: 1, maximum: MAX_CONTEXT_LENGTH }), MAX_CONTEXT_LENGTH),
    gpusPerReplica: withDefault(integer({
      enum: GPU_COUNTS,
      description: 'GPUs per replica = tensor-parallel degree: 1, 2, 4 or 8. 0 runs on the CPU backend (no GPU request), for small checkpoints in development and tests.',
    }), 8),
    gpu: withDefault(gpu, {}),
    replicas: withDefault(integer({ minimum: 0, maximum: 1000 }), 1),
    autoscaling: autoscaling,
    runtime: withDefault(runtime, {}),
    scheduling: scheduling,
    service: withDefault(service, {}),
    inferencePool: inferencePool,
  }),
  [memoryFitRule(), cpuModelRule()],
);

const condition = object({
  type: required(string({ maxLength: 316 })),
  status: required(enumOf(['True', 'False', 'Unknown'] as const)),
  reason: required(string({ maxLength: 1024 })),
  message: required(string({ maxLength: 32768 })),
  lastTransitionTime: required(string({ format: 'date-time' })),
  observedGeneration: integer({ minimum: 0 }),
});

const scalingDecision = object({
  time: required(string({ format: 'date-time' })),
  from: required(integer({ minimum: 0 })),
  to: required(integer({ minimum: 0 })),
  reason: required(string({ maxLength: 64 })),
  message: required(string({ maxLength: 2048 })),
  source: required(enumOf(['scrape', 'prometheus'] as const)),
  tokensPerSecond: required(number({ minimum: 0 })),
  recommendation: integer({ minimum: 0 }),
  readyReplicas: required(integer({ minimum: 0 })),
  startingReplicas: required(integer({ minimum: 0 })),
  withoutMetrics: required(integer({ minimum: 0 })),
  saturatedReplicas: required(integer({ minimum: 0 })),
});

export const statusField = object({
  observedGeneration: integer({ minimum: 0 }),
  replicas: integer({ minimum: 0, description: 'Pods of the current Deployment (scale subresource).' }),
  readyReplicas: integer({ minimum: 0 }),
  desiredReplicas: integer({ minimum: 0 }),
  readyText: string({ description: 'ready/desired, for the Ready printer column.' }),
  selector: string({ description: 'Label selector of the pods (scale subresource).' }),
  tokensPerSecond: number({ minimum: 0, description: 'Tokens per second over all replicas, as the autoscaler last measured them.' }),
  lastScaleTime: string({ format: 'date-time', description: 'When the autoscaler last changed the replica count.' }),
  scalingDecisions: array(scalingDecision, { maxItems: 10, listType: 'atomic', description: 'The autoscaler\'s last decisions that changed something, oldest first.' }),
  model: object({
    downloadPercent: integer({ minimum: 0, maximum: 100, description: 'Share of the checkpoint downloaded (Hugging Face sources).' }),
    bytesDone: integer({ minimum: 0 }),
    bytesTotal: integer({ minimum: 0 }),
    bytesPerSecond: integer({ minimum: 0, description: 'Download throughput over the last seconds.' }),
    etaSeconds: integer({ minimum: 0, description: 'Estimated seconds left of the download.' }),
    loadPercent: integer({ minimum: 0, maximum: 100, description: 'Weight loading of the slowest loading pod (its jamba_model_load_progress_ratio).' }),
  }, { description: 'Progress of getting the model ready: download (Hugging Face sources), then loading into the pods.' }),
  conditions: array(condition, { listType: 'atomic' }),
});

export type JambaDeploymentSpec = TypeOf<typeof specField>;
export type JambaDeploymentStatus = TypeOf<typeof statusField>;
export type Condition = TypeOf<typeof condition>;
export type ScalingDecisionRecord = TypeOf<typeof scalingDecision>;

export interface JambaDeployment {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: V1ObjectMeta;
  spec: JambaDeploymentSpec;
  status?: JambaDeploymentStatus;
}
