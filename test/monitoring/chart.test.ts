// charts/jamba-operator as Helm renders it: lint, the CRD identical to crds/, least-privilege RBAC equal
// to operator/config/rbac.yaml, a hardened leader-elected Deployment, the monitoring objects and
// dashboards, and values refused by values.schema.json. (test/chart puts it on the local cluster.)
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { renderDashboardFiles } from '../../tools/monitoring/generate-dashboards.js';
import { repoRoot, run, toolPath } from '../harness/exec.js';
import { CHART_DIR, KUBE_VERSION, committedDashboards, findObject, helmTemplate, type K8sObject } from './chart.js';

const CRD_FILE = 'serving.jamba.dev_jambadeployments.yaml';
let objects: K8sObject[];
beforeAll(async () => {
  objects = await helmTemplate({ release: 'jamba-operator', namespace: 'jamba-system' });
});

test('helm lint --strict passes', async () => {
  const { stdout } = await run(toolPath('helm'), ['lint', '--strict', CHART_DIR, '--kube-version', KUBE_VERSION]);
  expect(stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
});

test('the chart\'s CRD file is crds/ byte for byte, and renders to the same object plus release metadata', () => {
  const source = readFileSync(path.join(repoRoot, 'crds', CRD_FILE), 'utf8');
  expect(readFileSync(path.join(CHART_DIR, 'files', 'crds', CRD_FILE), 'utf8')).toBe(source);
  const rendered = findObject(objects, 'CustomResourceDefinition');
  const { labels, annotations, ...meta } = rendered.metadata;
  const expected = parse(source);
  expect({ ...rendered, metadata: meta }).toEqual(expected);
  expect(annotations).toEqual({ 'helm.sh/resource-policy': 'keep' });
  expect(labels).toMatchObject({ 'app.kubernetes.io/name': 'jamba-operator', 'app.kubernetes.io/instance': 'jamba-operator' });
});

test('every object carries the standard app.kubernetes.io labels', () => {
  for (const o of objects) {
    expect({ object: `${o.kind}/${o.metadata.name}`, labels: o.metadata.labels }).toMatchObject({
      object: `${o.kind}/${o.metadata.name}`,
      labels: {
        'app.kubernetes.io/name': 'jamba-operator', 'app.kubernetes.io/instance': 'jamba-operator', 'app.kubernetes.io/version': '0.1.0',
        'app.kubernetes.io/managed-by': 'Helm', 'app.kubernetes.io/part-of': 'jamba-serving', 'helm.sh/chart': 'jamba-operator-0.1.0',
      },
    });
  }
});

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };
const grants = (rules: Rule[]) => new Set(rules.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`)))));

test('RBAC: the ClusterRole plus the leader-election Role grant exactly operator/config/rbac.yaml', () => {
  const reference = parse(readFileSync(path.join(repoRoot, 'operator', 'config', 'rbac.yaml'), 'utf8')) as { rules: Rule[] };
  const clusterRole = findObject(objects, 'ClusterRole', 'jamba-operator');
  const leaseRole = findObject(objects, 'Role', 'jamba-operator-leader-election');
  expect(leaseRole.metadata.namespace).toBe('jamba-system');
  expect([...grants([...clusterRole.rules, ...leaseRole.rules])].sort()).toEqual([...grants(reference.rules)].sort());
  // Leases are not granted cluster-wide, and get/update only on the operator's own Lease.
  expect([...grants(clusterRole.rules)].some((g) => g.startsWith('coordination.k8s.io/'))).toBe(false);
  for (const r of leaseRole.rules as Rule[]) if (r.verbs.includes('update')) expect(r.resourceNames).toEqual(['jamba-operator-leader']);
  const binding = findObject(objects, 'ClusterRoleBinding');
  expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'jamba-operator', namespace: 'jamba-system' }]);
});

test('namespaced scope: the same ClusterRole bound only in each allowed namespace, and the operator told so', async () => {
  const scoped = await helmTemplate({ release: 'jamba-operator', set: { 'watch.scope': 'namespaces', 'watch.namespaces': '{team-a,team-b}' } });
  expect(scoped.filter((o) => o.kind === 'ClusterRoleBinding')).toEqual([]);
  const bindings = scoped.filter((o) => o.kind === 'RoleBinding' && o.roleRef.kind === 'ClusterRole');
  expect(bindings.map((b) => b.metadata.namespace)).toEqual(['team-a', 'team-b']);
  const container = findObject(scoped, 'Deployment').spec.template.spec.containers[0];
  expect(container.args).toContain('--namespace=team-a,team-b');
  expect(findObject(scoped, 'PodMonitor').spec.namespaceSelector).toEqual({ matchNames: ['team-a', 'team-b'] });
  await expect(helmTemplate({ set: { 'watch.scope': 'namespaces' } })).rejects.toThrow(/list at least one namespace in watch.namespaces/);
});

test('the operator Deployment: 2 replicas, leader election, non-root, read-only root, no escalation, requests', () => {
  const d = findObject(objects, 'Deployment');
  expect(d.spec.replicas).toBe(2);
  const pod = d.spec.template.spec;
  const c = pod.containers[0];
  expect(c.image).toBe('ghcr.io/jamba-serving/jamba-operator:0.1.0');
  expect(c.command).toEqual(['jamba-operator']);
  expect(c.args).toEqual(expect.arrayContaining(['--leader-elect=true', '--metrics-addr=0.0.0.0:8080']));
  expect(c.env).toContainEqual({ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } });
  expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
  expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  expect(c.resources.requests).toEqual({ cpu: '100m', memory: '128Mi' });
  expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
  expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
  expect(pod.serviceAccountName).toBe('jamba-operator');
  expect(findObject(objects, 'Service').spec.ports).toEqual([{ name: 'metrics', port: 8080, targetPort: 'metrics', protocol: 'TCP' }]);
  expect(findObject(objects, 'PodDisruptionBudget').spec.minAvailable).toBe(1);
});

test('values reach the operator: runtime image override, tracing endpoint, one replica without election', async () => {
  const o = await helmTemplate({ set: { 'runtime.defaultImage': 'registry.local/jamba-runtime:dev', 'tracing.otlpEndpoint': 'http://otel-collector:4318', 'replicaCount': 1, 'leaderElection.enabled': false } });
  const c = findObject(o, 'Deployment').spec.template.spec.containers[0];
  expect(c.args).toEqual(expect.arrayContaining(['--default-runtime-image=registry.local/jamba-runtime:dev', '--leader-elect=false']));
  expect(c.env).toContainEqual({ name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'http://otel-collector:4318' });
  expect(o.filter((x) => x.kind === 'Role' || x.kind === 'PodDisruptionBudget')).toEqual([]);
  await expect(helmTemplate({ set: { 'leaderElection.enabled': false } })).rejects.toThrow(/needs replicaCount 1/);
});

test('autoscaler values reach the operator\'s flags; a URL that is not http(s) is refused', async () => {
  const plain = findObject(await helmTemplate({}), 'Deployment').spec.template.spec.containers[0];
  expect(plain.args).toContain('--autoscaler-interval=10');
  expect(plain.args.filter((a: string) => a.startsWith('--prometheus-url'))).toEqual([]);
  const o = await helmTemplate({ set: { 'autoscaler.intervalSeconds': 5, 'autoscaler.prometheusUrl': 'http://prometheus.monitoring:9090' } });
  const c = findObject(o, 'Deployment').spec.template.spec.containers[0];
  expect(c.args).toEqual(expect.arrayContaining(['--autoscaler-interval=5', '--prometheus-url=http://prometheus.monitoring:9090']));
  await expect(helmTemplate({ set: { 'autoscaler.prometheusUrl': 'prometheus:9090' } })).rejects.toThrow(/autoscaler.prometheusUrl/);
});

test('values.schema.json refuses what it should, with the path to fix', async () => {
  for (const [set, message] of [
    [{ replicaCount: 0 }, "/replicaCount': minimum"],
    [{ 'watch.scope': 'everywhere' }, '/watch/scope'],
    [{ logLevel: 'verbose' }, '/logLevel'],
    [{ 'monitoring.prometheusRule.thresholds.errorRatio': 2 }, '/monitoring/prometheusRule/thresholds/errorRatio'],
    [{ 'monitoring.podMonitor.interval': '15 seconds' }, '/monitoring/podMonitor/interval'],
    [{ imagePullPolicy: 'Always' }, "additional properties 'imagePullPolicy' not allowed"],
  ] as const) {
    await expect(helmTemplate({ set })).rejects.toThrow(message);
  }
});

test('monitoring objects are monitoring.coreos.com/v1 and carry the configurable release label', async () => {
  const o = await helmTemplate({ release: 'jamba-operator', namespace: 'jamba-system', set: { 'monitoring.labels.release': 'prom-stack' } });
  for (const kind of ['ServiceMonitor', 'PodMonitor', 'PrometheusRule']) {
    const m = findObject(o, kind);
    expect(m.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(m.metadata.labels?.release).toBe('prom-stack');
  }
  const sm = findObject(o, 'ServiceMonitor');
  expect(sm.spec.endpoints[0]).toMatchObject({ port: 'metrics', honorLabels: true });
  expect(sm.spec.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'jamba-operator', 'app.kubernetes.io/instance': 'jamba-operator' });
  const pm = findObject(o, 'PodMonitor');
  expect(pm.spec.selector.matchExpressions).toEqual([{ key: 'serving.jamba.dev/jambadeployment', operator: 'Exists' }]);
  expect(pm.spec.podMetricsEndpoints[0]).toMatchObject({ port: 'http', path: '/metrics' });
  const off = await helmTemplate({ set: { 'monitoring.enabled': false } });
  expect(off.filter((x) => x.apiVersion === 'monitoring.coreos.com/v1' || x.kind === 'ConfigMap')).toEqual([]);
});

test('dashboards: ConfigMaps for the Grafana sidecar, with a folder, holding the committed JSON', () => {
  const maps = objects.filter((o) => o.kind === 'ConfigMap');
  const committed = committedDashboards();
  expect(maps).toHaveLength(committed.length);
  for (const { file, json } of committed) {
    const map = maps.find((m) => m.data[file] !== undefined)!;
    expect(map.metadata.labels?.grafana_dashboard).toBe('1');
    expect(map.metadata.annotations).toEqual({ grafana_folder: 'Jamba' });
    expect(JSON.parse(map.data[file])).toEqual(json);
  }
});

test('the committed dashboards are what tools/monitoring/dashboards.ts generates', () => {
  const generated = renderDashboardFiles();
  expect(committedDashboards().map((d) => d.file)).toEqual([...generated.keys()].sort());
  for (const [file, text] of generated) expect(readFileSync(path.join(CHART_DIR, 'dashboards', file), 'utf8')).toBe(text);
});

test('the serving dashboard has the panels users asked for', () => {
  const serving = committedDashboards().find((d) => d.json.uid === 'jamba-serving')!.json;
  const titles = serving.panels.map((p: { title: string }) => p.title);
  for (const t of ['Tokens/s per JambaDeployment', 'Generated tokens/s per replica', 'Time to first token', 'Inter-token latency',
    'Requests running and waiting', 'KV-cache usage', 'Mamba state slots in use', 'Replicas: desired vs ready', 'Scaling decisions', 'Weight loading progress']) {
    expect(titles).toContain(t);
  }
  const operator = committedDashboards().find((d) => d.json.uid === 'jamba-operator')!.json;
  expect(operator.panels.map((p: { title: string }) => p.title)).toEqual(expect.arrayContaining(['Reconciles/s by result', 'Reconcile latency']));
});

test('API server access: a kubeconfig from a Secret, and the node\'s network listening on the pod (node) address only', async () => {
  const o = await helmTemplate({ set: { 'apiServerAccess.kubeconfigSecret': 'operator-kubeconfig', 'apiServerAccess.hostNetwork': true } });
  const pod = findObject(o, 'Deployment').spec.template.spec;
  const c = pod.containers[0];
  expect(pod.hostNetwork).toBe(true);
  expect(c.args).toEqual(expect.arrayContaining(['--kubeconfig=/etc/jamba-operator/kubeconfig', '--metrics-addr=$(POD_IP):8080']));
  expect(c.env).toContainEqual({ name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } });
  expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
  expect(pod.volumes).toContainEqual({ name: 'kubeconfig', secret: { secretName: 'operator-kubeconfig' } });
  expect(c.volumeMounts).toContainEqual({ name: 'kubeconfig', mountPath: '/etc/jamba-operator', readOnly: true });
  const inCluster = findObject(objects, 'Deployment').spec.template.spec;
  expect(inCluster.hostNetwork).toBeUndefined();
  expect(inCluster.containers[0].args.some((a: string) => a.startsWith('--kubeconfig'))).toBe(false);
});
