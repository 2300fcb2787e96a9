// The autoscaling act of `make demo`: turns on autoscaling for a running CPU JambaDeployment (real pods on
// the real node), drives a streaming load through its Service that rises and then falls, and prints one
// readable line a second — load, tokens/s offered and served, replicas desired and ready, failed
// requests — and every scaling decision with its reason as the operator records it. Exits 1 if any
// request failed or was cut.
//
//   node dist/tools/demo/autoscaling-demo.js --namespace NS --name JD [--high-seconds 45] [--low-seconds 75] [--kubeconfig .cluster/kubeconfig]
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import type { JambaDeployment } from '../../operator/api/jambadeployment.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const { values } = parseArgs({
  options: {
    namespace: { type: 'string' },
    name: { type: 'string' },
    'high-seconds': { type: 'string', default: '45' },
    'low-seconds': { type: 'string', default: '75' },
    kubeconfig: { type: 'string', default: path.join(root, '.cluster', 'kubeconfig') },
  },
});
if (!values.namespace || !values.name) throw new Error('--namespace and --name are required');
const [NS, NAME] = [values.namespace, values.name];
const exec = promisify(execFile);
const kubectl = async (...args: string[]) => (await exec(path.join(root, '.tools', 'bin', 'kubectl'), ['--kubeconfig', values.kubeconfig!, '-n', NS, ...args])).stdout;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MAX_TOKENS = 16;

let requested = 0;
let served = 0;
let failed = 0;

/** One streamed completion; counts the tokens as they arrive. A stream without a finish_reason was cut. */
async function stream(url: string): Promise<void> {
  requested += MAX_TOKENS;
  try {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'jamba-tiny', prompt: 'Once upon a time', max_tokens: MAX_TOKENS, stream: true }),
    });
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    let finished = false;
    let text = '';
    for await (const chunk of res.body!) {
      text += Buffer.from(chunk).toString('utf8');
      const events = text.split('\n\n');
      text = events.pop()!;
      for (const e of events) {
        if (!e.startsWith('data: ') || e === 'data: [DONE]') continue;
        const choice = (JSON.parse(e.slice(6)) as { choices: Array<{ finish_reason?: string | null }> }).choices[0];
        served++;
        if (choice?.finish_reason) finished = true;
      }
    }
    if (!finished) throw new Error('stream cut');
  } catch {
    failed++;
  }
}

async function main() {
  await kubectl('patch', 'jd', NAME, '--type=merge', '-p', JSON.stringify({ spec: { autoscaling: {
    enabled: true, minReplicas: 1, maxReplicas: 2, targetTokensPerSecondPerReplica: 20, metricsWindowSeconds: 10, scaleDownStabilizationSeconds: 20,
  } } }));
  console.log(`autoscaling on: min 1, max 2, target 20 tok/s per replica, metrics window 10 s, scale-down window 20 s`);
  const svc = JSON.parse(await kubectl('get', 'service', NAME, '-o', 'json')) as { spec: { clusterIP: string; ports: Array<{ port: number }> } };
  const url = `http://${svc.spec.clusterIP}:${svc.spec.ports[0]!.port}`;
  const high = Number(values['high-seconds']);
  const low = Number(values['low-seconds']);
  const started = Date.now();
  const elapsed = () => (Date.now() - started) / 1000;
  const phase = () => (elapsed() < high ? 'high' : 'low');
  // High: 3 streams back to back; low: one stream a second.
  const workers = [0, 1, 2].map(async (w) => {
    while (elapsed() < high + low) {
      if (phase() === 'high') await stream(url);
      else if (w === 0) await Promise.all([stream(url), sleep(1000)]);
      else await sleep(500);
    }
  });
  let [lastRequested, lastServed, lastT] = [0, 0, 0];
  const seen = new Set<string>();
  while (elapsed() < high + low) {
    await sleep(1000);
    const t = elapsed();
    const jd = JSON.parse(await kubectl('get', 'jd', NAME, '-o', 'json')) as JambaDeployment;
    const s = jd.status ?? {};
    const dt = t - lastT;
    console.log(`${t.toFixed(0).padStart(4)} s  load ${phase().padEnd(4)}  offered ${((requested - lastRequested) / dt).toFixed(0).padStart(4)} tok/s  ` +
      `served ${((served - lastServed) / dt).toFixed(0).padStart(4)} tok/s  replicas desired ${s.desiredReplicas ?? '-'} ready ${s.readyReplicas ?? 0}  ` +
      `TOKENS/S ${s.tokensPerSecond ?? '-'}  failed ${failed}`);
    [lastRequested, lastServed, lastT] = [requested, served, t];
    for (const d of s.scalingDecisions ?? []) {
      const key = `${d.time} ${d.reason} ${d.to}`;
      if (seen.has(key) || Date.parse(d.time) < started - 1000) continue;
      seen.add(key);
      console.log(`      decision ${d.from} → ${d.to} ${d.reason}: ${d.message}`);
    }
  }
  await Promise.all(workers);
  console.log(`${failed} failed or cut requests of ${requested / MAX_TOKENS}`);
  return failed === 0 ? 0 : 1;
}

main().then((code) => process.exit(code), (e: unknown) => {
  console.error(e);
  process.exit(1);
});
