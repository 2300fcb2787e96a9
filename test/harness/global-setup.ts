// Jest global setup of the `cluster` project: builds the tools (a no-op when cached) and starts the
// local control plane unless a healthy one is already up. A marker file records that this run started
// it, so the teardown stops only a cluster the tests started themselves.
import { existsSync, writeFileSync } from 'node:fs';
import { clusterDir, runClusterScript } from './exec.js';
import { startedByJestMarker } from './marker.js';

export default async function globalSetup(): Promise<void> {
  try {
    await runClusterScript('build-tools.sh', [], { inheritStderr: true });
  } catch (cause) {
    throw new Error('building the cluster tools (tools/cluster/build-tools.sh)', { cause });
  }

  const healthy = await runClusterScript('status.sh').then(
    () => true,
    () => false,
  );
  if (healthy) {
    if (!existsSync(startedByJestMarker)) process.stderr.write('\ncluster: reusing the cluster that is already up\n');
    return;
  }

  try {
    await runClusterScript('up.sh', [], { inheritStderr: true });
  } catch (cause) {
    throw new Error(`starting the local cluster (tools/cluster/up.sh; logs in ${clusterDir}/logs)`, { cause });
  }
  writeFileSync(startedByJestMarker, `${process.pid}\n`);
}
