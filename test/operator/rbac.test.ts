// The operator runs with nothing but operator/config/rbac.yaml: a ServiceAccount token bound to that
// ClusterRole (by a RoleBinding in the namespace it watches) is enough to lead and reconcile.
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { Operator } from '../../operator/controller/operator.js';
import { repoRoot } from '../harness/exec.js';
import { kubectl, makeKubeConfig, waitFor, withNamespace } from '../harness/cluster.js';
import { createJd, installCrd, waitForCondition } from './support.js';

const ns = withNamespace('op-rbac');
let operator: Operator | undefined;

beforeAll(installCrd);
afterAll(async () => {
  await operator?.stop();
});

function serviceAccountConfig(token: string): KubeConfig {
  const admin = makeKubeConfig();
  const cluster = admin.getCurrentCluster()!;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'local', server: cluster.server, caData: cluster.caData, caFile: cluster.caFile, skipTLSVerify: false }],
    users: [{ name: 'jamba-operator', token }],
    contexts: [{ name: 'sa', cluster: 'local', user: 'jamba-operator', namespace: ns.name }],
    currentContext: 'sa',
  });
  return kc;
}

test('the ClusterRole in operator/config/rbac.yaml is all the operator needs', async () => {
  await kubectl(['apply', '--server-side', '--force-conflicts', '-f', path.join(repoRoot, 'operator/config/rbac.yaml')]);
  await kubectl(['create', 'serviceaccount', 'jamba-operator', '-n', ns.name]);
  await kubectl(['create', 'rolebinding', 'jamba-operator', '-n', ns.name, '--clusterrole=jamba-operator', `--serviceaccount=${ns.name}:jamba-operator`]);
  const token = (await kubectl(['create', 'token', 'jamba-operator', '-n', ns.name, '--duration=1h'])).trim();
  // The account really is limited: it cannot read nodes.
  await expect(kubectl(['get', 'nodes', `--as=system:serviceaccount:${ns.name}:jamba-operator`])).rejects.toThrow(/forbidden/);

  const errors: string[] = [];
  operator = new Operator({
    kubeConfig: serviceAccountConfig(token), namespace: ns.name, leaderElection: { namespace: ns.name }, workers: 1,
    logger: { debug: () => {}, info: () => {}, warn: (m, f) => errors.push(`${m} ${JSON.stringify(f)}`), error: (m, f) => errors.push(`${m} ${JSON.stringify(f)}`), child() { return this; } },
  });
  await operator.start();
  await createJd(ns.name, 'mini', { gpusPerReplica: 1 });
  await waitForCondition(ns.name, 'mini', 'Ready', 'True');
  // Creating the event is allowed too (it is sent in the background).
  await waitFor(async () => (await kubectl(['get', 'events', '-n', ns.name, '--field-selector', 'involvedObject.name=mini,reason=Created', '-o', 'name'])).trim() !== '',
    { description: 'the Created event of mini' });
  // Two replicas bring a PDB, one takes it away again.
  const pdbs = async () => (await kubectl(['get', 'pdb', '-n', ns.name, '-o', 'name'])).trim();
  await kubectl(['scale', 'jd/mini', '-n', ns.name, '--replicas=2']);
  await waitFor(async () => (await pdbs()) === 'poddisruptionbudget.policy/mini', { description: 'PDB mini created' });
  await kubectl(['scale', 'jd/mini', '-n', ns.name, '--replicas=1']);
  await waitFor(async () => (await pdbs()) === '', { description: 'PDB mini deleted' });
  expect(errors).toEqual([]);
}, 90_000);
