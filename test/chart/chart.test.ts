// The chart against the local API server: `helm template` passes a server-side dry run (with the
// Prometheus Operator's CRDs installed from their Go module), `helm install` creates the release,
// `helm upgrade` changes it and removes what values turn off, and `helm uninstall` leaves nothing.
import { randomBytes } from 'node:crypto';
import { run, toolPath } from '../harness/exec.js';
import { helm, kubectl, kubectlJson, waitFor, withNamespace } from '../harness/cluster.js';
import { CHART_DIR, helmTemplateText } from '../monitoring/chart.js';
import { installCrd, installThirdPartyCrds } from '../operator/support.js';

const ns = withNamespace('chart');
const release = `jo-${randomBytes(3).toString('hex')}`;
const fullname = `${release}-jamba-operator`;

beforeAll(async () => {
  await installCrd();
  await installThirdPartyCrds('prometheus-operator');
}, 120_000);

afterAll(async () => {
  await helm(['uninstall', release, '-n', ns.name, '--ignore-not-found']).catch(() => undefined);
});

/** Everything of the release left in the cluster, as kind/name. */
async function leftovers(): Promise<string[]> {
  const selector = `app.kubernetes.io/instance=${release}`;
  const namespaced = await kubectl(['get', 'deployments,replicasets,pods,services,configmaps,serviceaccounts,roles,rolebindings,poddisruptionbudgets,servicemonitors,podmonitors,prometheusrules',
    '-n', ns.name, '-l', selector, '-o', 'name']);
  const cluster = await kubectl(['get', 'clusterroles,clusterrolebindings', '-l', selector, '-o', 'name']);
  return `${namespaced}${cluster}`.split('\n').filter(Boolean);
}

test('helm template, every object, passes the API server\'s server-side dry run (cluster-wide and namespaced scope)', async () => {
  for (const set of [[], ['--set', 'watch.scope=namespaces', '--set', `watch.namespaces={${ns.name}}`]]) {
    const manifest = (await run(toolPath('helm'), ['template', release, CHART_DIR, '-n', ns.name, '--kube-version', '1.36.3', ...set])).stdout;
    const out = await kubectl(['apply', '--dry-run=server', '-n', ns.name, '-f', '-'], { input: manifest });
    for (const kind of ['customresourcedefinition', 'deployment', 'clusterrole', 'role', 'servicemonitor', 'podmonitor', 'prometheusrule', 'configmap']) {
      expect(out).toMatch(new RegExp(`^${kind}[^ ]* .* \\(server dry run\\)$`, 'm'));
    }
  }
  // The same text helm template gives the tests that check its content.
  expect(await helmTemplateText({ release, namespace: ns.name })).toContain(`name: ${fullname}`);
}, 60_000);

test('install, upgrade, uninstall: the release\'s objects come, change and go, leaving nothing', async () => {
  // The CRD is already installed (and shared by every test file); the release does not own it here.
  // Scoped to this namespace, so that wherever its pods run they touch no other test's JambaDeployments;
  // no --wait: this is about the release's objects, wherever (and whether) its pods can run.
  const install = await helm(['install', release, CHART_DIR, '-n', ns.name, '--set', 'crds.install=false',
    '--set', 'watch.scope=namespaces', '--set', `watch.namespaces={${ns.name}}`]);
  expect(install).toContain(`Lease ${ns.name}/jamba-operator-leader`);
  expect(install).toContain('kubectl get jd -n <namespace> -w');
  const deployment = await kubectlJson<{ spec: { replicas: number } }>(['get', 'deployment', fullname, '-n', ns.name]);
  expect(deployment.spec.replicas).toBe(2);
  const before = await leftovers();
  for (const kind of ['servicemonitor', 'podmonitor', 'prometheusrule', 'clusterrole', 'rolebinding', 'serviceaccount']) {
    expect({ kind, present: before.some((o) => o.startsWith(`${kind}.`) || o.startsWith(`${kind}/`)) }).toEqual({ kind, present: true });
  }

  await helm(['upgrade', release, CHART_DIR, '-n', ns.name, '--reuse-values', '--set', 'replicaCount=3', '--set', 'monitoring.labels.release=prom-b']);
  expect((await kubectlJson<{ spec: { replicas: number } }>(['get', 'deployment', fullname, '-n', ns.name])).spec.replicas).toBe(3);
  const sm = await kubectlJson<{ metadata: { labels: Record<string, string> } }>(['get', 'servicemonitor', fullname, '-n', ns.name]);
  expect(sm.metadata.labels.release).toBe('prom-b');

  // Turning monitoring off removes its objects.
  await helm(['upgrade', release, CHART_DIR, '-n', ns.name, '--reuse-values', '--set', 'monitoring.enabled=false']);
  const after = await leftovers();
  expect(after.filter((o) => /^(servicemonitor|podmonitor|prometheusrule|configmap)/.test(o))).toEqual([]);

  await helm(['uninstall', release, '-n', ns.name, '--wait', '--timeout', '120s']);
  await waitFor(async () => ((await leftovers()).length === 0 ? true : undefined), { description: `nothing of release ${release} left`, timeoutMs: 60_000, intervalMs: 1000 });
  expect(await kubectl(['get', 'secrets', '-n', ns.name, '-l', `owner=helm,name=${release}`, '-o', 'name'])).toBe('');
}, 300_000);
