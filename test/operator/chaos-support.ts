// Shared by the operator's fault tests: freeing what a test file held on the shared KWOK nodes.
import type { KubernetesListObject, V1Pod } from '@kubernetes/client-node';
import { kubectl, kubectlJson, waitFor } from '../harness/cluster.js';

/**
 * Deletes every JambaDeployment in `namespace` and waits until their pods are gone, so the GPUs they
 * held on the shared KWOK nodes are free for the test files that follow.
 */
export async function deleteAllAndWait(namespace: string): Promise<void> {
  await kubectl(['delete', 'jambadeployments', '--all', '-n', namespace, '--wait=true', '--timeout=120s']);
  await waitFor(async () => (await kubectlJson<KubernetesListObject<V1Pod>>(['get', 'pods', '-n', namespace])).items.length === 0,
    { description: `the pods in ${namespace} to be gone`, timeoutMs: 120_000, intervalMs: 1000 });
}
