// kubectl and helm are the pinned builds in .tools/bin and talk to the cluster over TLS.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { helm, kubectl, kubectlJson, withNamespace } from '../harness/cluster.js';

const ns = withNamespace('tools');

interface KubectlVersion {
  clientVersion: { gitVersion: string };
  serverVersion: { gitVersion: string };
}

test('kubectl is the built v1.36.3 and so is the API server it reaches', async () => {
  const version = await kubectlJson<KubectlVersion>(['version']);
  expect(version.clientVersion.gitVersion).toBe('v1.36.3');
  expect(version.serverVersion.gitVersion).toBe('v1.36.3');
});

describe('helm', () => {
  let chartDir: string;

  beforeAll(async () => {
    chartDir = await mkdtemp(path.join(os.tmpdir(), 'jamba-helm-'));
    await mkdir(path.join(chartDir, 'templates'));
    await writeFile(path.join(chartDir, 'Chart.yaml'), 'apiVersion: v2\nname: tiny\nversion: 0.1.0\n');
    await writeFile(path.join(chartDir, 'values.yaml'), 'greeting: hello\n');
    await writeFile(
      path.join(chartDir, 'templates', 'configmap.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-greeting\ndata:\n  greeting: {{ .Values.greeting | quote }}\n',
    );
  });

  afterAll(async () => {
    await rm(chartDir, { recursive: true, force: true });
  });

  test('reports its pinned version', async () => {
    expect(await helm(['version', '--short'])).toMatch(/^v3\.22\.0\b/);
  });

  test('renders a chart with values', async () => {
    const rendered = await helm(['template', 'demo', chartDir, '--set', 'greeting=hi']);
    expect(rendered).toContain('name: demo-greeting');
    expect(rendered).toContain('greeting: "hi"');
  });

  test('installs and uninstalls a release on the cluster', async () => {
    await helm(['install', 'demo', chartDir, '-n', ns.name, '--wait', '--timeout', '60s']);
    const cm = await kubectlJson<V1ConfigMap>(['-n', ns.name, 'get', 'configmap', 'demo-greeting']);
    expect(cm.data).toEqual({ greeting: 'hello' });
    await helm(['uninstall', 'demo', '-n', ns.name, '--wait']);
    expect(await kubectl(['-n', ns.name, 'get', 'configmaps', '-o', 'name'])).not.toContain('configmap/demo-greeting');
  });
});
