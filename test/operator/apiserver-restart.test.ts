// The API server goes away mid-run and comes back: the operator's watches fail, restart with backoff,
// and it carries on (new JambaDeployments reconcile; drift on old ones is repaired).
import { kubectl, restartApiServer, waitFor, withNamespace } from '../harness/cluster.js';
import { createJd, useInProcessOperator, waitForCondition } from './support.js';

const ns = withNamespace('op-restart');
const op = useInProcessOperator(ns);

test('an API-server restart mid-run: watches recover and new work reconciles', async () => {
  await createJd(ns.name, 'before', { gpusPerReplica: 1 });
  await waitForCondition(ns.name, 'before', 'Ready', 'True');

  await restartApiServer({ downtimeMs: 3000 });
  // The watches saw the connection drop and were restarted.
  await waitFor(() => op.logs.some((l) => l.includes('"msg":"watch failed; restarting"')), { description: 'a logged watch failure', timeoutMs: 10_000 });

  await createJd(ns.name, 'after', { gpusPerReplica: 1 });
  await waitForCondition(ns.name, 'after', 'Ready', 'True', undefined, 60_000);

  // Child watches work again too: a Service deleted now is restored.
  await kubectl(['delete', 'service', 'before', '-n', ns.name, '--wait=true']);
  await waitFor(() => kubectl(['get', 'service', 'before', '-n', ns.name, '-o', 'name']), { description: 'Service before re-created', timeoutMs: 30_000 });
  expect(op.operator.isLeader).toBe(true);
}, 180_000);
