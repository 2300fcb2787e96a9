import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { CRD_FILE, buildCrd } from './crd.js';
import { renderCrdYaml } from './generate-crd.js';

describe('CRD', () => {
  test(`${CRD_FILE} is the generator's output (regenerate: node dist/operator/api/generate-crd.js)`, () => {
    expect(readFileSync(CRD_FILE, 'utf8')).toBe(renderCrdYaml());
  });

  test('scale subresource and defaults the controller relies on', () => {
    const crd = parse(renderCrdYaml());
    const v = crd.spec.versions[0];
    expect(v.subresources.scale).toEqual({ specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' });
    const spec = v.schema.openAPIV3Schema.properties.spec;
    expect(spec.required).toEqual(['model']);
    expect(spec.properties.quantization).toMatchObject({ default: 'ExpertsInt8', enum: ['ExpertsInt8', 'None'] });
    expect(spec.properties.maxContextLength).toMatchObject({ default: 262144, maximum: 262144 });
    expect(spec.properties.gpusPerReplica).toMatchObject({ default: 8, enum: [0, 1, 2, 4, 8] });
    expect(spec.properties.gpu.properties.minMemoryMiB.default).toBe(80000);
    expect(spec.properties.runtime.properties.startupTimeoutSeconds.default).toBe(3600);
    expect(buildCrd()).toEqual(crd);
  });
});
