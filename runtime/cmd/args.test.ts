import { RUNTIME_DEFAULTS } from '../server/runtime.js';
import { parseServeArgs, UsageError } from './args.js';

test('defaults: loopback, port 8000, no quantization, the documented limits', () => {
  const config = parseServeArgs(['--model', 'm']);
  expect(config).toEqual({
    runtime: {
      modelDir: 'm',
      randomPreset: undefined,
      host: '127.0.0.1',
      port: 8000,
      quantization: 'none',
      backend: 'auto',
      tensorParallelSize: 1,
      gpuMemoryUtilization: RUNTIME_DEFAULTS.gpuMemoryUtilization,
      maxModelLen: undefined,
      maxNumSeqs: undefined, // the backend's default, chosen at load
      maxNumBatchedTokens: undefined,
      maxWaiting: RUNTIME_DEFAULTS.maxWaiting,
      servedModelName: undefined,
      kvBlockSize: undefined,
      kvNumBlocks: undefined,
      maxBodyBytes: RUNTIME_DEFAULTS.maxBodyBytes,
      faultInjection: undefined,
      stepStallSeconds: RUNTIME_DEFAULTS.stepStallSeconds,
      vllmMetrics: false,
    },
    drainTimeoutSeconds: 30,
  });
});

test('flags map onto runtime options', () => {
  const config = parseServeArgs([
    '--model=/ckpt', '--host', '0.0.0.0', '--port', '0', '--quantization', 'expertsint8', '--backend', 'cpu',
    '--tensor-parallel-size', '8', '--gpu-memory-utilization', '0.85', '--fault-injection', 'step-hang:3', '--max-model-len', '8192', '--max-num-seqs', '4', '--served-model-name', 'ai21labs/AI21-Jamba-1.5-Mini',
    '--max-num-batched-tokens', '256', '--max-waiting', '0', '--kv-block-size', '32', '--drain-timeout', '5',
    '--vllm-metrics',
  ]);
  expect(config).not.toBe('help');
  if (config === 'help') return;
  expect(config.runtime).toMatchObject({
    modelDir: '/ckpt', host: '0.0.0.0', port: 0, quantization: 'expertsint8', backend: 'cpu', tensorParallelSize: 8, gpuMemoryUtilization: 0.85,
    faultInjection: { kind: 'step-hang', after: 3 }, maxModelLen: 8192, maxNumSeqs: 4,
    servedModelName: 'ai21labs/AI21-Jamba-1.5-Mini', maxNumBatchedTokens: 256, maxWaiting: 0, kvBlockSize: 32, vllmMetrics: true,
  });
  expect(config.drainTimeoutSeconds).toBe(5);
  expect(parseServeArgs(['--help'])).toBe('help');
});

test.each([
  [[], /--model DIR is required/],
  [['--model', 'm', '--port', '70000'], /--port must be at most 65535/],
  [['--model', 'm', '--max-num-seqs', '0'], /--max-num-seqs must be an integer >= 1/],
  [['--model', 'm', '--max-model-len', '1e4'], /--max-model-len must be an integer/],
  [['--model', 'm', '--quantization', 'int4'], /--quantization must be 'none' or 'expertsint8'/],
  [['--model', 'm', '--backend', 'tpu'], /--backend must be 'auto', 'cpu' or 'cuda', got 'tpu'/],
  [['--model', 'm', '--tensor-parallel-size', '0'], /--tensor-parallel-size must be an integer >= 1/],
  [['--model', 'm', '--gpu-memory-utilization', '1.5'], /--gpu-memory-utilization must be a number in \(0, 1\]/],
  [['--model', 'm', '--gpu-memory-utilization', '0'], /--gpu-memory-utilization must be a number in \(0, 1\]/],
  [['--model', 'm', '--fault-injection', 'boom'], /--fault injection must be 'step-error:N' or 'step-hang:N'/],
  [['--model', 'm', '--nope'], /nope/],
  [['--preset', 'jamba-1.5-mini'], /--preset needs --random-weights/],
  [['--random-weights'], /--random-weights needs --preset NAME/],
  [['--model', 'm', '--preset', 'jamba-tiny', '--random-weights'], /--model and --preset exclude each other/],
  [['--model', 'm', 'extra'], /extra/],
])('%j is refused: %s', (argv, message) => {
  expect(() => parseServeArgs(argv)).toThrow(UsageError);
  expect(() => parseServeArgs(argv)).toThrow(message);
});
