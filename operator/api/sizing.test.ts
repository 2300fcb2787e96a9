import { checkFit, fitMessage, knownSizing, mambaStateBytesPerSequence, KNOWN_MODELS, MIB, type FitInput } from './sizing.js';

describe('sizing', () => {
  test.each([
    // model, quantization, ctx, gpus, MiB per GPU, fits
    ['ai21labs/AI21-Jamba-1.5-Large', 'None', 262144, 8, 80000, false], // ~796 GB of bf16 weights > 8×80 GB
    ['ai21labs/AI21-Jamba-1.5-Large', 'ExpertsInt8', 262144, 8, 80000, true], // the paper's claim: one 8×80 GB node
    ['ai21labs/AI21-Jamba-1.5-Large', 'ExpertsInt8', 262144, 4, 80000, false],
    ['ai21labs/AI21-Jamba-1.5-Large', 'None', 262144, 8, 141000, true], // 8×H200
    ['ai21labs/AI21-Jamba-1.5-Mini', 'None', 262144, 1, 80000, false], // 104 GB of bf16
    ['ai21labs/AI21-Jamba-1.5-Mini', 'None', 262144, 2, 80000, true],
    ['ai21labs/AI21-Jamba-1.5-Mini', 'ExpertsInt8', 262144, 1, 80000, true], // 55 GB + 4 GiB KV
    ['AI21LABS/ai21-jamba-1.5-mini', 'None', 262144, 1, 80000, false], // names compare case-insensitively
    ['my-org/some-other-model', 'None', 262144, 1, 1000, true], // unknown models are not checked
    ['ai21labs/AI21-Jamba-1.5-Mini', 'ExpertsInt8', 4096, 0, 80000, false], // a known model never runs on the CPU backend
    ['my-org/tiny-jamba', 'None', 4096, 0, 80000, true], // unknown (small) checkpoints may
  ] as const)('%s %s ctx=%i on %i×%i MiB fits=%s', (modelName, quantization, maxContextLength, gpusPerReplica, minMemoryMiB, fits) => {
    expect(checkFit({ modelName, quantization, maxContextLength, gpusPerReplica, minMemoryMiB }).fits).toBe(fits);
  });

  test('weights follow DESIGN.md: Large bf16 ~796 GB, Mini ExpertsInt8 ~55-56 GB', () => {
    expect(knownSizing('ai21labs/AI21-Jamba-1.5-Large')?.weightsGB).toEqual({ None: 796, ExpertsInt8: 426 });
    expect(knownSizing('ai21labs/AI21-Jamba-1.5-Mini')?.weightsGB).toEqual({ None: 104, ExpertsInt8: 56 });
  });

  test('KV and Mamba state per DESIGN.md: 16/36 KiB per token, ~15 MiB Mamba state for Mini', () => {
    expect(knownSizing('ai21labs/AI21-Jamba-1.5-Mini')?.kvKiBPerToken).toBe(16);
    expect(knownSizing('ai21labs/AI21-Jamba-1.5-Large')?.kvKiBPerToken).toBe(36);
    const mini = KNOWN_MODELS['ai21labs/ai21-jamba-1.5-mini']!;
    expect(mambaStateBytesPerSequence(mini) / MIB).toBeCloseTo(15.3, 1);
  });

  test('message says what it needs and what to change', () => {
    const input: FitInput = { modelName: 'ai21labs/AI21-Jamba-1.5-Large', quantization: 'None', maxContextLength: 262144, gpusPerReplica: 8, minMemoryMiB: 80000 };
    const msg = fitMessage(input, checkFit(input));
    expect(msg).toContain('needs ~796 GB of weights + 36 KiB of KV cache per token');
    expect(msg).toContain('8 GPUs × 80000 MiB leave 576000 MiB usable');
    expect(msg).toContain('use quantization ExpertsInt8');
  });

  test('a known model on the CPU is refused with why and what to change', () => {
    const input: FitInput = { modelName: 'ai21labs/AI21-Jamba-1.5-Mini', quantization: 'ExpertsInt8', maxContextLength: 4096, gpusPerReplica: 0, minMemoryMiB: 80000 };
    const r = checkFit(input);
    expect(r.cpu).toBe(true);
    expect(fitMessage(input, r)).toBe('model ai21labs/AI21-Jamba-1.5-Mini with quantization ExpertsInt8 needs ~56 GB of weights, too large for the CPU backend; ' +
      'the CPU backend (gpusPerReplica: 0) is for small checkpoints in development and tests; set gpusPerReplica to 1, 2, 4 or 8');
  });
});
