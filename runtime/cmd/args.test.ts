import { RUNTIME_DEFAULTS } from '../server/runtime.js';
import { parseServeArgs, UsageError } from './args.js';

test('defaults: loopback, port 8000, no quantization, the documented limits', () => {
  const config = parseServeArgs(['--model', 'm']);
  expect(config).toEqual({
    runtime: {
      modelDir: 'm',
      host: '127.0.0.1',
      port: 8000,
      quantization: 'none',
      maxModelLen: RUNTIME_DEFAULTS.maxModelLen,
      maxNumSeqs: RUNTIME_DEFAULTS.maxNumSeqs,
      maxNumBatchedTokens: RUNTIME_DEFAULTS.maxNumBatchedTokens,
      maxWaiting: RUNTIME_DEFAULTS.maxWaiting,
      servedModelName: undefined,
      kvBlockSize: undefined,
      kvNumBlocks: undefined,
      maxBodyBytes: RUNTIME_DEFAULTS.maxBodyBytes,
    },
    drainTimeoutSeconds: 30,
  });
});

test('flags map onto runtime options', () => {
  const config = parseServeArgs([
    '--model=/ckpt', '--host', '0.0.0.0', '--port', '0', '--quantization', 'expertsint8', '--backend', 'cpu',
    '--tensor-parallel-size', '1', '--max-model-len', '8192', '--max-num-seqs', '4', '--served-model-name', 'ai21labs/AI21-Jamba-1.5-Mini',
    '--max-num-batched-tokens', '256', '--max-waiting', '0', '--kv-block-size', '32', '--drain-timeout', '5',
  ]);
  expect(config).not.toBe('help');
  if (config === 'help') return;
  expect(config.runtime).toMatchObject({
    modelDir: '/ckpt', host: '0.0.0.0', port: 0, quantization: 'expertsint8', maxModelLen: 8192, maxNumSeqs: 4,
    servedModelName: 'ai21labs/AI21-Jamba-1.5-Mini', maxNumBatchedTokens: 256, maxWaiting: 0, kvBlockSize: 32,
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
  [['--model', 'm', '--backend', 'cuda'], /--backend cuda is not available in this build/],
  [['--model', 'm', '--backend', 'tpu'], /--backend must be 'cpu' or 'cuda'/],
  [['--model', 'm', '--tensor-parallel-size', '8'], /--tensor-parallel-size 8 is not available in this build/],
  [['--model', 'm', '--nope'], /nope/],
  [['--model', 'm', 'extra'], /extra/],
])('%j is refused: %s', (argv, message) => {
  expect(() => parseServeArgs(argv)).toThrow(UsageError);
  expect(() => parseServeArgs(argv)).toThrow(message);
});
