// The contract between the operator and the runtime: every argument list the operator generates
// (for every example and a matrix over every spec field that changes the arguments) goes through the
// runtime's own parser, and what the runtime understood is what the spec asked for.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { GPU_COUNTS, KIND } from '../../operator/api/jambadeployment.js';
import { withSpecDefaults } from '../../operator/api/defaults.js';
import { desiredDeployment } from '../../operator/controller/desired.js';
import { jambaDeployment } from '../../operator/controller/testing/fixtures.js';
import { parseServeArgs } from '../../runtime/cmd/args.js';
import { E2E_SPECS } from '../e2e/specs.js';
import { repoRoot } from '../harness/exec.js';


function exampleSpecs(): [string, Record<string, unknown>][] {
  const dir = path.join(repoRoot, 'examples');
  return readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).flatMap((file) =>
    parseAllDocuments(readFileSync(path.join(dir, file), 'utf8'))
      .map((d) => d.toJS() as { kind?: string; spec?: Record<string, unknown> })
      .filter((o) => o?.kind === KIND && o.spec)
      .map((o): [string, Record<string, unknown>] => [`examples/${file}`, o.spec!]));
}

const SOURCES = {
  pvc: { pvc: { claimName: 'weights', subPath: 'jamba' } },
  hostPath: { hostPath: { path: '/var/lib/jamba/m' } },
  huggingFace: { huggingFace: { repo: 'org/some-jamba', revision: 'abc' } },
};

function matrixSpecs(): [string, Record<string, unknown>][] {
  const out: [string, Record<string, unknown>][] = [];
  for (const gpus of GPU_COUNTS) {
    for (const [sourceName, source] of Object.entries(SOURCES)) {
      for (const quantization of ['ExpertsInt8', 'None']) {
        out.push([`gpus ${gpus}, ${sourceName}, ${quantization}`, {
          model: { name: 'org/some-jamba', source }, gpusPerReplica: gpus, quantization, maxContextLength: 8192,
        }]);
      }
    }
    out.push([`gpus ${gpus}, every optional runtime field`, {
      model: { name: 'org/some-jamba', source: SOURCES.hostPath }, gpusPerReplica: gpus,
      runtime: { port: 9000, maxNumSeqs: 17, maxNumBatchedTokens: 2048, drainTimeoutSeconds: 0, args: ['--max-waiting', '3'] },
      inferencePool: { endpointPicker: { name: 'epp' } },
    }]);
  }
  return out;
}

const CASES = [...exampleSpecs(), ...Object.entries(E2E_SPECS).map(([n, s]): [string, Record<string, unknown>] => [`e2e ${n}`, s]), ...matrixSpecs()];

test('the examples include a CPU one and a GPU one', () => {
  const gpus = exampleSpecs().map(([, s]) => withSpecDefaults(s).gpusPerReplica);
  expect(gpus).toContain(0);
  expect(gpus.some((g) => g > 0)).toBe(true);
});

describe.each(CASES)('%s', (_name, rawSpec) => {
  const jd = jambaDeployment(rawSpec);
  const container = desiredDeployment(jd).spec!.template.spec!.containers[0]!;

  test('the runtime parses the generated arguments to what the spec says', () => {
    const [command, ...flags] = container.args!;
    expect(command).toBe('serve');
    const parsed = parseServeArgs(flags);
    if (parsed === 'help') throw new Error('the operator generated --help');
    const s = jd.spec;
    const r = parsed.runtime;
    expect(r.backend).toBe(s.gpusPerReplica === 0 ? 'cpu' : 'cuda');
    expect(r.tensorParallelSize).toBe(Math.max(1, s.gpusPerReplica));
    expect(r.quantization).toBe(s.quantization === 'ExpertsInt8' ? 'expertsint8' : 'none');
    expect(r.maxModelLen).toBe(s.maxContextLength);
    expect(r.port).toBe(s.runtime.port);
    expect(container.ports?.[0]?.containerPort).toBe(r.port);
    expect(r.host).toBe('0.0.0.0');
    expect(r.servedModelName).toBe(s.model.name);
    const modelMount = container.volumeMounts!.find((m) => m.name === 'model')!;
    expect(r.modelDir === modelMount.mountPath || r.modelDir.startsWith(`${modelMount.mountPath}/`)).toBe(true);
    expect(parsed.drainTimeoutSeconds).toBe(s.runtime.drainTimeoutSeconds);
    if (s.runtime.maxNumSeqs !== undefined) expect(r.maxNumSeqs).toBe(s.runtime.maxNumSeqs);
    if (s.runtime.maxNumBatchedTokens !== undefined) expect(r.maxNumBatchedTokens).toBe(s.runtime.maxNumBatchedTokens);
    expect(r.vllmMetrics).toBe(s.inferencePool !== undefined);
  });

  test('GPU resources, affinity and toleration exactly when the spec asks for GPUs', () => {
    const pod = desiredDeployment(jd).spec!.template.spec!;
    const gpus = jd.spec.gpusPerReplica;
    const resource = jd.spec.gpu.resourceName;
    expect(container.resources?.limits?.[resource]).toBe(gpus === 0 ? undefined : String(gpus));
    expect(container.resources?.requests?.[resource]).toBe(gpus === 0 || !container.resources?.requests ? undefined : String(gpus));
    expect((pod.tolerations ?? []).some((t) => t.key === resource)).toBe(gpus > 0);
    expect(JSON.stringify(pod.affinity ?? {}).includes('nvidia.com/gpu.memory')).toBe(gpus > 0);
  });
});
