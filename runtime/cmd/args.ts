// Flags of `jamba-runtime serve` (node:util parseArgs), checked into a RuntimeOptions.
import { parseArgs } from 'node:util';
import { type FaultSpec, parseFaultSpec } from '../engine/fault-injection.js';
import { isBackendChoice, type Quantization } from '../engine/model-runner.js';
import { RUNTIME_DEFAULTS, type RuntimeOptions } from '../server/runtime.js';
import { UsageError } from './usage-error.js';

// In a module of its own so that commands other than serve import it without the serving runtime.
export { UsageError } from './usage-error.js';

export interface ServeConfig {
  runtime: RuntimeOptions;
  drainTimeoutSeconds: number;
}

const D = RUNTIME_DEFAULTS;

export function serveUsage(): string {
  return `Usage: jamba-runtime serve --model DIR [options]
       jamba-runtime serve --preset NAME --random-weights [options]

Serves a Hugging Face Jamba checkpoint over the OpenAI API (/v1/completions, /v1/chat/completions,
/v1/models), with /health, /ready and /metrics.

Options:
  --model DIR                    checkpoint directory (config.json, safetensors, tokenizer files)
  --preset NAME --random-weights instead of a checkpoint: a published shape (jamba-1.5-mini, jamba-1.5-large)
                                 with random weights and a synthetic tokenizer ("t0" … "t65535"), for benchmarks
  --host HOST                    address to bind                                  [default: ${D.host}]
  --port N                       port to listen on (0: any free port)             [default: ${D.port}]
  --quantization MODE            none | expertsint8                               [default: ${D.quantization}]
  --backend NAME                 auto | cpu | cuda (auto: cuda when a GPU is visible)  [default: auto]
  --tensor-parallel-size N       GPUs the model is split over                     [default: 1]
  --gpu-memory-utilization F     share of GPU memory for weights, KV cache and state (0..1]  [default: ${D.gpuMemoryUtilization}]
  --max-model-len N              longest prompt + output, tokens  [default: cpu ${D.maxModelLen}; cuda the model's max_position_embeddings]
  --max-num-seqs N               most sequences running at once   [default: cpu 16; cuda 256, fewer if memory is short]
  --max-num-batched-tokens N     token budget of one engine step  [default: cpu ${D.maxNumBatchedTokens}; cuda ${D.maxNumBatchedTokensGpu}]
  --max-waiting N                requests queued beyond the running batch; more get 429  [default: ${D.maxWaiting}]
  --served-model-name NAME       model id clients use                             [default: the directory's name]
  --kv-block-size N              tokens per KV-cache block                        [default: 16]
  --kv-num-blocks N              KV-cache blocks in the pool     [default: enough for max-num-seqs × max-model-len]
  --max-body-bytes N             largest request body; larger gets 413            [default: ${D.maxBodyBytes}]
  --drain-timeout SECONDS        on SIGTERM, how long in-flight requests may finish  [default: ${D.drainTimeoutSeconds}]
  --step-stall-timeout SECONDS   a model step running longer makes /health answer 503  [default: ${D.stepStallSeconds}]
  --fault-injection SPEC         testing only: step-error:N or step-hang:N makes model steps after the N-th fail or hang
  --vllm-metrics                 also export vLLM's metric names (vllm:*) for routers, KEDA, the inference gateway
  -h, --help                     show this help
`;
}

function positiveInt(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min || !Number.isSafeInteger(Number(value))) {
    throw new UsageError(`--${name} must be an integer >= ${min}, got '${value}'`);
  }
  return Number(value);
}

function fraction(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const v = Number(value);
  if (!/^\d*\.?\d+$/.test(value) || !(v > 0 && v <= 1)) throw new UsageError(`--${name} must be a number in (0, 1], got '${value}'`);
  return v;
}

function faults(value: string | undefined): FaultSpec | undefined {
  if (value === undefined) return undefined;
  try {
    return parseFaultSpec(value);
  } catch (error) {
    throw new UsageError(`--${(error as Error).message}`);
  }
}

function port(value: string | undefined): number {
  const p = positiveInt('port', value, D.port, 0);
  if (p > 65535) throw new UsageError(`--port must be at most 65535, got ${p}`);
  return p;
}

export function parseServeArgs(argv: string[]): ServeConfig | 'help' {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        model: { type: 'string' },
        preset: { type: 'string' },
        'random-weights': { type: 'boolean' },
        host: { type: 'string' },
        port: { type: 'string' },
        quantization: { type: 'string' },
        backend: { type: 'string' },
        'tensor-parallel-size': { type: 'string' },
        'gpu-memory-utilization': { type: 'string' },
        'max-model-len': { type: 'string' },
        'max-num-seqs': { type: 'string' },
        'max-num-batched-tokens': { type: 'string' },
        'max-waiting': { type: 'string' },
        'served-model-name': { type: 'string' },
        'kv-block-size': { type: 'string' },
        'kv-num-blocks': { type: 'string' },
        'max-body-bytes': { type: 'string' },
        'drain-timeout': { type: 'string' },
        'fault-injection': { type: 'string' },
        'step-stall-timeout': { type: 'string' },
        'vllm-metrics': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (cause) {
    throw new UsageError((cause as Error).message);
  }
  if (values['help']) return 'help';
  const str = (k: string): string | undefined => values[k] as string | undefined;

  const model = str('model');
  const preset = str('preset');
  if (preset !== undefined && model !== undefined) throw new UsageError('--model and --preset exclude each other');
  if (preset !== undefined && !values['random-weights']) throw new UsageError('--preset needs --random-weights (a preset has no checkpoint)');
  if (values['random-weights'] && preset === undefined) throw new UsageError('--random-weights needs --preset NAME');
  if (!model && preset === undefined) throw new UsageError('--model DIR is required');
  const quantization = str('quantization') ?? D.quantization;
  if (quantization !== 'none' && quantization !== 'expertsint8') {
    throw new UsageError(`--quantization must be 'none' or 'expertsint8', got '${quantization}'`);
  }
  const backend = str('backend') ?? 'auto';
  if (!isBackendChoice(backend)) throw new UsageError(`--backend must be 'auto', 'cpu' or 'cuda', got '${backend}'`);
  // Sizes above 1 are accepted here and refused at load by a backend that cannot split the model,
  // so the error names the backend actually chosen (auto may pick either).
  const tensorParallelSize = positiveInt('tensor-parallel-size', str('tensor-parallel-size'), 1);
  const servedModelName = str('served-model-name');
  if (servedModelName === '') throw new UsageError('--served-model-name must not be empty');

  const maxModelLenFlag = str('max-model-len');
  const maxModelLen = maxModelLenFlag !== undefined ? positiveInt('max-model-len', maxModelLenFlag, 1) : undefined;
  const batchedFlag = str('max-num-batched-tokens');
  const maxNumBatchedTokens = batchedFlag !== undefined ? positiveInt('max-num-batched-tokens', batchedFlag, 1) : undefined;
  return {
    runtime: {
      modelDir: model ?? '',
      randomPreset: preset,
      host: str('host') ?? D.host,
      port: port(str('port')),
      quantization: quantization as Quantization,
      backend,
      tensorParallelSize,
      gpuMemoryUtilization: fraction('gpu-memory-utilization', str('gpu-memory-utilization'), D.gpuMemoryUtilization),
      maxModelLen,
      maxNumSeqs: str('max-num-seqs') !== undefined ? positiveInt('max-num-seqs', str('max-num-seqs'), 1) : undefined,
      maxNumBatchedTokens,
      maxWaiting: positiveInt('max-waiting', str('max-waiting'), D.maxWaiting, 0),
      servedModelName,
      kvBlockSize: str('kv-block-size') !== undefined ? positiveInt('kv-block-size', str('kv-block-size'), 16) : undefined,
      kvNumBlocks: str('kv-num-blocks') !== undefined ? positiveInt('kv-num-blocks', str('kv-num-blocks'), 1) : undefined,
      maxBodyBytes: positiveInt('max-body-bytes', str('max-body-bytes'), D.maxBodyBytes),
      faultInjection: faults(str('fault-injection')),
      stepStallSeconds: positiveInt('step-stall-timeout', str('step-stall-timeout'), D.stepStallSeconds),
      vllmMetrics: values['vllm-metrics'] === true,
    },
    drainTimeoutSeconds: positiveInt('drain-timeout', str('drain-timeout'), D.drainTimeoutSeconds, 0),
  };
}
