// Jest global setup of the `cluster` project: builds the tools and images (no-ops when cached) and starts the
// local control plane unless a healthy one is already up. up.sh records that jest started it, so the
// teardown stops only a cluster the tests started themselves.
// Jest loads this file as CommonJS without its module mapper: Node built-ins only, no local imports.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

function runScript(rootDir: string, script: string, env: NodeJS.ProcessEnv = {}): void {
  const result = spawnSync('bash', [path.join(rootDir, 'tools', script)], {
    cwd: rootDir,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (result.status !== 0) {
    const how = result.error?.message ?? (result.signal ? `killed by ${result.signal}` : `exit ${result.status}`);
    throw new Error(`jest cluster setup: tools/${script} failed (${how}); see its output above and .cluster/logs/`);
  }
}

export default async function globalSetup(_globalConfig: unknown, projectConfig: { rootDir: string }): Promise<void> {
  runScript(projectConfig.rootDir, 'cluster/build-tools.sh');
  // The images the real node runs (cached by content: a no-op when nothing changed).
  runScript(projectConfig.rootDir, 'images/build.sh');
  runScript(projectConfig.rootDir, 'cluster/up.sh', { CLUSTER_STARTED_BY: 'jest' });
}
