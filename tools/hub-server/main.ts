#!/usr/bin/env node
// The Hub-protocol test server as a process (benchmarks, the real-node end-to-end test):
//   node dist/tools/hub-server/main.js --repo ORG/NAME=DIR [--repo ...] [--host 127.0.0.1] [--port 0] [--cdn-host H] [--cdn-port 0]
// Prints one JSON line {"endpoint", "cdn"} once listening; SIGTERM stops it.
import { parseArgs } from 'node:util';
import { startHubServer } from './hub-server.js';

const { values } = parseArgs({
  options: {
    repo: { type: 'string', multiple: true },
    host: { type: 'string' },
    port: { type: 'string' },
    'cdn-host': { type: 'string' },
    'cdn-port': { type: 'string' },
    'gated-token': { type: 'string' },
  },
});
const repos = (values.repo ?? []).map((r) => {
  const eq = r.indexOf('=');
  if (eq < 1) throw new Error(`--repo must be ORG/NAME=DIR, got '${r}'`);
  return { id: r.slice(0, eq), dir: r.slice(eq + 1), ...(values['gated-token'] ? { gatedToken: values['gated-token'] } : {}) };
});
if (repos.length === 0) {
  process.stderr.write('usage: hub-server --repo ORG/NAME=DIR [--repo ...] [--host H] [--port N] [--cdn-host H] [--cdn-port N] [--gated-token T]\n');
  process.exit(2);
}
const hub = await startHubServer(repos, {
  host: values.host ?? '127.0.0.1', cdnHost: values['cdn-host'], hubPort: Number(values.port ?? 0), cdnPort: Number(values['cdn-port'] ?? 0), recordRequests: false,
});
process.stdout.write(`${JSON.stringify({ endpoint: hub.endpoint, cdn: hub.cdnUrl })}\n`);
const stop = (): void => void hub.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
