// Two real `jamba-operator` processes: one leads, the other waits; SIGKILL the leader and the other
// takes over within 15 s; SIGTERM shuts down cleanly (exit 0) and hands the lease back.
import type { V1Lease } from '@kubernetes/client-node';
import { kubectlJson, waitFor, withNamespace } from '../harness/cluster.js';
import { LEASE_NAME } from '../../operator/controller/operator.js';
import { createJd, ensureOperatorBuilt, installCrd, isLeader, killAll, metricValue, scrape, spawnOperator, waitForCondition, type OperatorProcess } from './support.js';

const ns = withNamespace('op-leader');
const running: OperatorProcess[] = [];

beforeAll(async () => {
  ensureOperatorBuilt();
  await installCrd();
}, 300_000);

afterAll(() => killAll(running));

function start(): OperatorProcess {
  const p = spawnOperator(ns.name);
  running.push(p);
  return p;
}


function lease(): Promise<V1Lease> {
  return kubectlJson<V1Lease>(['get', 'lease', '-n', ns.name, LEASE_NAME]);
}

async function leaderOf(a: OperatorProcess, b: OperatorProcess): Promise<[OperatorProcess, OperatorProcess]> {
  return waitFor(async () => {
    const [la, lb] = await Promise.all([isLeader(a), isLeader(b)]);
    if (la && lb) throw new Error('two leaders at once');
    if (la) return [a, b] as [OperatorProcess, OperatorProcess];
    if (lb) return [b, a] as [OperatorProcess, OperatorProcess];
    return undefined;
  }, { description: 'one of two operators to lead', timeoutMs: 30_000, intervalMs: 250 });
}

test('two operators: one leader reconciles; SIGKILL it and the other takes over within 15 s', async () => {
  const a = start();
  const b = start();
  await waitFor(() => a.port() !== undefined && b.port() !== undefined, { description: 'both operators serving metrics' });
  const [leader, standby] = await leaderOf(a, b);
  expect((await lease()).spec?.holderIdentity).toBe(leader.identity());
  // The standby stays ready (it answers probes) but does not lead.
  expect((await scrape(standby.port()!, '/readyz')).status).toBe(200);
  expect(await isLeader(standby)).toBe(false);

  await createJd(ns.name, 'before', { gpusPerReplica: 1 });
  await waitForCondition(ns.name, 'before', 'Ready', 'True');
  // Only the leader did the work.
  expect(metricValue((await scrape(standby.port()!)).body, 'jamba_operator_reconcile_total{result="applied"}')).toBeUndefined();

  const killedAt = Date.now();
  leader.child.kill('SIGKILL');
  await leader.exited;
  await waitFor(() => isLeader(standby), { description: 'the standby to take the lease', timeoutMs: 20_000, intervalMs: 200 });
  const takeoverMs = Date.now() - killedAt;
  expect(takeoverMs).toBeLessThan(15_000);
  expect((await lease()).spec?.holderIdentity).toBe(standby.identity());

  // The new leader lists everything, finds 'before' in sync, and writes nothing for it.
  await new Promise((r) => setTimeout(r, 3000));
  const writes = (await scrape(standby.port()!)).body.split('\n')
    .filter((l) => /^jamba_operator_api_requests_total\{verb="(PATCH|CREATE|UPDATE)",resource="(?!leases)/.test(l));
  expect(writes).toEqual([]);
  expect(metricValue((await scrape(standby.port()!)).body, 'jamba_operator_reconcile_total{result="unchanged"}')).toBeGreaterThanOrEqual(1);

  // The new leader reconciles new work.
  await createJd(ns.name, 'after', { gpusPerReplica: 1 });
  await waitForCondition(ns.name, 'after', 'Ready', 'True');
}, 120_000);

test('SIGTERM: exits 0 and hands the lease back at once', async () => {
  const p = running.find((x) => x.child.exitCode === null && x.child.signalCode === null)!;
  await waitFor(() => isLeader(p), { description: 'the surviving operator to lead' });
  const next = start();
  await waitFor(() => next.port() !== undefined, { description: 'the new operator serving metrics' });
  const stoppedAt = Date.now();
  p.child.kill('SIGTERM');
  expect(await p.exited).toEqual({ code: 0, signal: null });
  expect(p.lines.some((l) => l.includes('"msg":"shutting down"'))).toBe(true);
  // Released, so the successor does not wait out the lease duration (10 s).
  await waitFor(() => isLeader(next), { description: 'the new operator to take the released lease', timeoutMs: 20_000, intervalMs: 200 });
  expect(Date.now() - stoppedAt).toBeLessThan(6_000);
}, 60_000);
