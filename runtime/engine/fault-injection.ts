// Fault injection for tests of what runs around the engine (liveness probes, restarts): a ModelRunner
// wrapper whose steps fail or hang after a number of good ones. Enabled only by the serve flag
// --fault-injection (never by default).
import type { ModelRunner, SampleResult, StepSequence } from './model-runner.js';

export interface FaultSpec {
  kind: 'step-error' | 'step-hang';
  /** Good steps before the faults start. */
  after: number;
}

/** Parses `step-error:N` or `step-hang:N`. */
export function parseFaultSpec(text: string): FaultSpec {
  const m = /^(step-error|step-hang):(\d+)$/.exec(text);
  if (!m) throw new Error(`fault injection must be 'step-error:N' or 'step-hang:N', got '${text}'`);
  return { kind: m[1] as FaultSpec['kind'], after: Number(m[2]) };
}

export function withFaults(runner: ModelRunner, spec: FaultSpec): ModelRunner {
  let steps = 0;
  return {
    get vocabSize() {
      return runner.vocabSize;
    },
    get geometry() {
      return runner.geometry;
    },
    async step(seqs: StepSequence[]): Promise<SampleResult> {
      if (steps++ < spec.after) return runner.step(seqs);
      if (spec.kind === 'step-error') throw new Error(`injected fault: step ${steps} fails`);
      return new Promise<SampleResult>(() => {}); // never settles: a wedged device
    },
    resetStateSlot: (slot) => runner.resetStateSlot(slot),
    dispose: () => runner.dispose(),
  };
}
