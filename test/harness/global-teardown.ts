// Jest global teardown of the `cluster` project: stops the cluster only if the global setup started it
// (JAMBA_KEEP_CLUSTER=1 keeps it up for the next run). CommonJS like the setup: no local imports.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

export default async function globalTeardown(_globalConfig: unknown, projectConfig: { rootDir: string }): Promise<void> {
  if (process.env.JAMBA_KEEP_CLUSTER === '1') return;
  const script = path.join(projectConfig.rootDir, 'tools', 'cluster', 'down.sh');
  const result = spawnSync('bash', [script, '--if-started-by=jest'], {
    cwd: projectConfig.rootDir,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (result.status !== 0) {
    throw new Error(`jest cluster teardown: tools/cluster/down.sh failed (exit ${result.status}); some cluster process may be left`);
  }
}
