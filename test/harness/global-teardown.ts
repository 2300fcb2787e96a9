// Jest global teardown of the `cluster` project: stops the cluster only if the global setup started it
// (JAMBA_KEEP_CLUSTER=1 keeps it up for the next run).
import { existsSync } from 'node:fs';
import { runClusterScript } from './exec.js';
import { startedByJestMarker } from './marker.js';

export default async function globalTeardown(): Promise<void> {
  if (!existsSync(startedByJestMarker) || process.env.JAMBA_KEEP_CLUSTER === '1') return;
  try {
    await runClusterScript('down.sh', [], { inheritStderr: true });
  } catch (cause) {
    throw new Error('stopping the local cluster (tools/cluster/down.sh)', { cause });
  }
}
