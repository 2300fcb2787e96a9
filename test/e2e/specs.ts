// The JambaDeployment specs the real-node tests apply (the operator ↔ runtime contract test runs them too).
import path from 'node:path';
import { repoRoot } from '../harness/exec.js';

export const TINY_CHECKPOINT = path.join(repoRoot, 'test', 'fixtures', 'jamba-tiny');

/** The tiny fixture checkpoint on the CPU backend, read from the real node's filesystem (it is this machine). */
export function tinyCpuSpec(overrides: { replicas?: number; args?: string[]; image?: string; drainTimeoutSeconds?: number } = {}): Record<string, unknown> {
  return {
    model: { name: 'jamba-tiny', source: { hostPath: { path: TINY_CHECKPOINT } } },
    quantization: 'None',
    maxContextLength: 4096,
    gpusPerReplica: 0,
    replicas: overrides.replicas ?? 1,
    runtime: {
      maxNumSeqs: 8,
      startupTimeoutSeconds: 300,
      drainTimeoutSeconds: overrides.drainTimeoutSeconds ?? 30,
      imagePullPolicy: 'IfNotPresent',
      resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '1Gi' } },
      ...(overrides.image ? { image: overrides.image } : {}),
      ...(overrides.args ? { args: overrides.args } : {}),
    },
  };
}

export const E2E_SPECS: Record<string, Record<string, unknown>> = {
  'tiny on the CPU': tinyCpuSpec(),
  'tiny on the CPU, two replicas, extra flags': tinyCpuSpec({ replicas: 2, args: ['--max-waiting', '16'], drainTimeoutSeconds: 20 }),
};
