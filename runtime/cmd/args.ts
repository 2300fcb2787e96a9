// Flags of `jamba-runtime serve` (node:util parseArgs), checked into a RuntimeOptions.
import { parseArgs } from 'node:util';
import type { Quantization } from '../engine/model-runner.js';
import { RUNTIME_DEFAULTS, type RuntimeOptions } from '../server/runtime.js';

export class UsageError extends Error {}

export interface ServeConfig {
  runtime: RuntimeOptions;
  drainTimeoutSeconds: number;
}

const D = RUNTIME_DEFAULTS;

export function serveUsage(): string {
  return `Usage: jamba-runtime serve --model DIR [options]

Serves a Hugging Face Jamba checkpoint over the OpenAI API (/v1/completions, /v1/chat/completions,
/v1/models), with /health, /ready and /metrics.

Options:
  --model DIR                    checkpoint directory (config.json, safetensors, tokenizer files)   [required]
  --host HOST                    address to bind                                  [default: ${D.host}]
  --port N                       port to listen on (0: any free port)             [default: ${D.port}]
  --quantization MODE            none | expertsint8                               [default: ${D.quantization}]
  --backend NAME                 cpu (cuda is not available in this build)        [default: cpu]
  --tensor-parallel-size N       GPUs per replica (only 1 in this build)          [default: 1]
  --max-model-len N              longest prompt + output, tokens                  [default: ${D.maxModelLen}]
  --max-num-seqs N               most sequences running at once                   [default: ${D.maxNumSeqs}]
  --max-num-batched-tokens N     token budget of one engine step                  [default: ${D.maxNumBatchedTokens}]
  --max-waiting N                requests queued beyond the running batch; more get 429  [default: ${D.maxWaiting}]
  --served-model-name NAME       model id clients use                             [default: the directory's name]
  --kv-block-size N              tokens per KV-cache block                        [default: 16]
  --kv-num-blocks N              KV-cache blocks in the pool     [default: enough for max-num-seqs × max-model-len]
  --max-body-bytes N             largest request body; larger gets 413            [default: ${D.maxBodyBytes}]
  --drain-timeout SECONDS        on SIGTERM, how long in-flight requests may finish  [default: ${D.drainTimeoutSeconds}]
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
        host: { type: 'string' },
        port: { type: 'string' },
        quantization: { type: 'string' },
        backend: { type: 'string' },
        'tensor-parallel-size': { type: 'string' },
        'max-model-len': { type: 'string' },
        'max-num-seqs': { type: 'string' },
        'max-num-batched-tokens': { type: 'string' },
        'max-waiting': { type: 'string' },
        'served-model-name': { type: 'string' },
        'kv-block-size': { type: 'string' },
        'kv-num-blocks': { type: 'string' },
        'max-body-bytes': { type: 'string' },
        'drain-timeout': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (cause) {
    throw new UsageError((cause as Error).message);
  }
  if (values['help']) return 'help';
  const str = (k: string): string | undefined => values[k] as string | undefined;

  const model = str('model');
  if (!model) throw new UsageError('--model DIR is required');
  const quantization = str('quantization') ?? D.quantization;
  if (quantization !== 'none' && quantization !== 'expertsint8') {
    throw new UsageError(`--quantization must be 'none' or 'expertsint8', got '${quantization}'`);
  }
  const backend = str('backend') ?? 'cpu';
  if (backend === 'cuda') throw new UsageError("--backend cuda is not available in this build (only 'cpu')");
  if (backend !== 'cpu') throw new UsageError(`--backend must be 'cpu' or 'cuda', got '${backend}'`);
  const tp = positiveInt('tensor-parallel-size', str('tensor-parallel-size'), 1);
  if (tp !== 1) throw new UsageError(`--tensor-parallel-size ${tp} is not available in this build (the CPU backend runs on one device)`);
  const servedModelName = str('served-model-name');
  if (servedModelName === '') throw new UsageError('--served-model-name must not be empty');

  const maxModelLen = positiveInt('max-model-len', str('max-model-len'), D.maxModelLen);
  const maxNumBatchedTokens = positiveInt('max-num-batched-tokens', str('max-num-batched-tokens'), D.maxNumBatchedTokens);
  return {
    runtime: {
      modelDir: model,
      host: str('host') ?? D.host,
      port: port(str('port')),
      quantization: quantization as Quantization,
      maxModelLen,
      maxNumSeqs: positiveInt('max-num-seqs', str('max-num-seqs'), D.maxNumSeqs),
      maxNumBatchedTokens,
      maxWaiting: positiveInt('max-waiting', str('max-waiting'), D.maxWaiting, 0),
      servedModelName,
      kvBlockSize: str('kv-block-size') !== undefined ? positiveInt('kv-block-size', str('kv-block-size'), 16) : undefined,
      kvNumBlocks: str('kv-num-blocks') !== undefined ? positiveInt('kv-num-blocks', str('kv-num-blocks'), 1) : undefined,
      maxBodyBytes: positiveInt('max-body-bytes', str('max-body-bytes'), D.maxBodyBytes),
    },
    drainTimeoutSeconds: positiveInt('drain-timeout', str('drain-timeout'), D.drainTimeoutSeconds, 0),
  };
}
