// The operator's API client in a burst (`node dist/tools/bench/kube-client-bench.js`): N concurrent GETs
// on a fresh KubeClient, so each opens its own TLS connection, as the first reconciles of a burst do.
// Reports the wall time and this process's CPU per round, and their medians. Needs the local cluster
// (`make cluster-up`).
//   node dist/tools/bench/kube-client-bench.js [--requests 100] [--rounds 5] [--kubeconfig .cluster/kubeconfig]
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../../operator/kube/client.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '5' },
    kubeconfig: { type: 'string', default: path.join(root, '.cluster', 'kubeconfig') },
  },
});
const requests = Number(values.requests);
const rounds = Number(values.rounds);
const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(values.kubeconfig!);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const wallMs: number[] = [];
const cpuMs: number[] = [];
for (let r = 0; r < rounds; r++) {
  const client = new KubeClient(kubeConfig);
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(Array.from({ length: requests }, () => client.request({ method: 'GET', path: '/api/v1/namespaces/default', verb: 'GET', resource: 'namespaces' })));
  const used = process.cpuUsage(cpu);
  wallMs.push(performance.now() - started);
  cpuMs.push((used.user + used.system) / 1000);
  client.close();
}
const round = (xs: number[]) => xs.map((x) => Math.round(x));
console.log(JSON.stringify({
  requests, rounds,
  wallMs: { median: Math.round(median(wallMs)), runs: round(wallMs) },
  clientCpuMs: { median: Math.round(median(cpuMs)), runs: round(cpuMs) },
}));
