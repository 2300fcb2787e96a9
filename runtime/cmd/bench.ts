// `jamba-runtime bench`: the runtime's benchmark command (a command, not a test: figures go to
// docs/BENCHMARKS.md with the command line, the machine and the date).
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { benchModel, type ModelBenchResult } from '../bench/model-bench.js';
import type { MoeShape, OpBenchRow } from '../bench/op-bench.js';
import { runLoad, type LoadResult } from '../bench/serve-load.js';
import { isBackendChoice } from '../engine/model-runner.js';
import { parseJambaConfig } from '../models/config.js';
import { PRESETS } from '../models/presets.js';
import { UsageError } from './args.js';

export function benchUsage(): string {
  return `Usage: jamba-runtime bench --preset NAME --random-weights [options]
       jamba-runtime bench --ops moe,attention,mamba [--json FILE]
       jamba-runtime bench --serve URL --served-model NAME [--concurrency 64 --requests 256 --prompt-tokens 1024 --max-tokens 128]

The whole model at a published size with random weights made on the device, or single ops at
Jamba-1.5-Mini shapes (CUDA backend), timed; prints a table, and JSON with --json.

Options:
  --preset NAME                  jamba-1.5-mini | jamba-1.5-large
  --random-weights               build the model from random weights (required with --preset)
  --quantization MODE            none | expertsint8                         [default: expertsint8]
  --backend NAME                 auto | cpu | cuda                          [default: auto]
  --batches LIST                 decode batch sizes                         [default: 1,8,64,256]
  --context N                    tokens already in each decoding sequence   [default: 1024]
  --prefills LIST                prompt lengths for prefill throughput      [default: 4096,32768]
                                 (with --ops: attention's and mamba's prefills [default: 4096,32768,131072(,262144)])
  --long-prompt N                one prompt of N tokens (0: none)           [default: 262144]
  --max-num-batched-tokens N     prefill chunk                              [default: 8192]
  --steps N                      timed decode steps per batch size          [default: 20]
  --tensor-parallel-size N       ranks (GPUs) to split the model over       [default: 1]
  --ops LIST                     op benchmarks instead of the model: moe, mlp, moe-parallel, attention, mamba
                                 (moe-parallel: the --preset's MoE layer [default: jamba-1.5-mini] split over
                                 the --tensor-parallel-size LIST ranks [default: 2,8] by ffn and by whole experts)
  --moe-tokens LIST              token counts of the MoE and MLP benchmarks [default: 1,8,64,256,1024,4096]
  --serve URL                    a streaming load against a running server instead (output tok/s, TTFT, ITL)
  --served-model NAME            the model id the server serves                     [with --serve]
  --concurrency N                streams at once                                   [default: 64]
  --requests N                   requests in all                                   [default: 256]
  --prompt-tokens N              random token ids per prompt                       [default: 1024]
  --max-tokens N                 tokens generated per request (ignore_eos)         [default: 128]
  --vocab-size N                 prompt ids are drawn below this                   [default: 65536]
  --json FILE                    write the results as JSON
`;
}

function list(value: string | undefined, fallback: number[]): number[] {
  if (value === undefined) return fallback;
  const out = value.split(',').map((v) => Number(v));
  if (out.some((v) => !Number.isInteger(v) || v < 1)) throw new UsageError(`expected a comma-separated list of positive integers, got '${value}'`);
  return out;
}

function int(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const v = Number(value);
  if (!Number.isInteger(v) || v < min) throw new UsageError(`--${name} must be an integer >= ${min}, got '${value}'`);
  return v;
}

const log = (line: string): void => void process.stderr.write(`${line}\n`);

/** What the op benchmarks take besides the op list. */
interface OpBenchOptions {
  moeTokens: number[];
  prefills?: number[];
  /** moe-parallel: the preset whose MoE layer is split, and the rank counts. */
  preset: string;
  ranks: number[];
}

/** A preset's MoE layer sizes. */
function moeShape(preset: string): MoeShape {
  const fields = PRESETS[preset];
  if (!fields) throw new UsageError(`unknown preset '${preset}' (known: ${Object.keys(PRESETS).join(', ')})`);
  const cfg = parseJambaConfig(JSON.stringify(fields), `preset ${preset}`);
  return { name: preset, hidden: cfg.hiddenSize, ffn: cfg.intermediateSize, experts: cfg.numExperts };
}

async function opBenches(ops: string[], o: OpBenchOptions): Promise<OpBenchRow[]> {
  const { moeTokens, prefills } = o;
  const { CudaBackend } = await import('../backends/cuda/index.js');
  const { OpBench } = await import('../bench/op-bench.js');
  const b = await CudaBackend.open();
  try {
    b.reserveActivations({ activationBytes: 8 * 2 ** 30, maxRows: 262144, maxSeqs: 256, maxBlocksPerSeq: 16400 });
    const bench = new OpBench(b, log);
    const rows: OpBenchRow[] = [];
    for (const op of ops) {
      if (op === 'moe') rows.push(...(await bench.moe(moeTokens)));
      else if (op === 'mlp') rows.push(...(await bench.mlp(moeTokens)));
      else if (op === 'moe-parallel') rows.push(...(await bench.moeParallel(moeShape(o.preset), o.ranks, moeTokens)));
      else if (op === 'attention') rows.push(...(await bench.attention(prefills ?? [4096, 32768, 131072, 262144], [[1, 262144], [64, 4096]])));
      else if (op === 'mamba') rows.push(...(await bench.mamba(prefills ?? [4096, 32768, 131072], [1, 8, 64, 256])));
      else throw new UsageError(`unknown op '${op}' (moe, mlp, moe-parallel, attention, mamba)`);
    }
    return rows;
  } finally {
    b.dispose();
  }
}

export async function bench(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      preset: { type: 'string' },
      'random-weights': { type: 'boolean' },
      quantization: { type: 'string' },
      backend: { type: 'string' },
      batches: { type: 'string' },
      context: { type: 'string' },
      prefills: { type: 'string' },
      'long-prompt': { type: 'string' },
      'max-num-batched-tokens': { type: 'string' },
      steps: { type: 'string' },
      'tensor-parallel-size': { type: 'string' },
      ops: { type: 'string' },
      'moe-tokens': { type: 'string' },
      serve: { type: 'string' },
      'served-model': { type: 'string' },
      concurrency: { type: 'string' },
      requests: { type: 'string' },
      'prompt-tokens': { type: 'string' },
      'max-tokens': { type: 'string' },
      'vocab-size': { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(benchUsage());
    return 0;
  }
  let output: { model?: ModelBenchResult; ops?: OpBenchRow[]; serve?: LoadResult } = {};
  if (values.serve) {
    if (!values['served-model']) throw new UsageError('--serve needs --served-model NAME');
    output = {
      serve: await runLoad({
        url: values.serve.replace(/\/$/, ''),
        model: values['served-model'],
        concurrency: int('concurrency', values.concurrency, 64),
        requests: int('requests', values.requests, 256),
        promptTokens: int('prompt-tokens', values['prompt-tokens'], 1024),
        maxTokens: int('max-tokens', values['max-tokens'], 128),
        vocabSize: int('vocab-size', values['vocab-size'], 65536, 2),
      }),
    };
    const s = output.serve!;
    log(`serve: ${s.requests} requests (${s.failed} failed, ${s.truncated} cut) in ${s.seconds.toFixed(1)} s: ${s.outputTokensPerSecond.toFixed(0)} output tok/s, TTFT p50 ${s.ttftMs.p50.toFixed(0)} / p99 ${s.ttftMs.p99.toFixed(0)} ms, ITL p50 ${s.itlMs.p50.toFixed(1)} / p99 ${s.itlMs.p99.toFixed(1)} ms`);
  } else if (values.ops) {
    output = {
      ops: await opBenches(values.ops.split(','), {
        moeTokens: list(values['moe-tokens'], [1, 8, 64, 256, 1024, 4096]),
        prefills: values.prefills === undefined ? undefined : list(values.prefills, []),
        preset: values.preset ?? 'jamba-1.5-mini',
        ranks: list(values['tensor-parallel-size'], [2, 8]),
      }),
    };
  } else {
    if (!values.preset) throw new UsageError('--preset NAME or --ops LIST is required');
    if (!values['random-weights']) throw new UsageError('--preset needs --random-weights (the preset has no checkpoint)');
    const quantization = values.quantization ?? 'expertsint8';
    if (quantization !== 'none' && quantization !== 'expertsint8') throw new UsageError(`--quantization must be 'none' or 'expertsint8'`);
    const backend = values.backend ?? 'auto';
    if (!isBackendChoice(backend)) throw new UsageError(`--backend must be 'auto', 'cpu' or 'cuda', got '${backend}'`);
    output = {
      model: await benchModel({
        preset: values.preset,
        quantization,
        backend,
        batches: list(values.batches, [1, 8, 64, 256]),
        context: int('context', values.context, 1024),
        prefills: list(values.prefills, [4096, 32768]),
        longPrompt: int('long-prompt', values['long-prompt'], 262144, 0),
        maxNumBatchedTokens: int('max-num-batched-tokens', values['max-num-batched-tokens'], 8192),
        steps: int('steps', values.steps, 20),
        tensorParallelSize: int('tensor-parallel-size', values['tensor-parallel-size'], 1),
        log,
      }),
    };
  }
  const text = JSON.stringify(output, null, 2);
  if (values.json) await writeFile(values.json, `${text}\n`);
  process.stdout.write(`${text}\n`);
  return 0;
}
