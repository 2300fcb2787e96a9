import { Registry } from 'prom-client';
import type { JambaDeployment } from '../api/jambadeployment.js';
import { jambaDeployment } from '../controller/testing/fixtures.js';
import { parseExposition, sampleSum } from '../../test/monitoring/exposition.js';
import { jambaDeploymentSeries, registerJambaDeploymentMetrics } from './jambadeployment-metrics.js';

const autoscaled = (): JambaDeployment => ({
  ...jambaDeployment({ autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 4, targetTokensPerSecondPerReplica: 500 } }, { name: 'large' }),
  status: {
    desiredReplicas: 4, replicas: 4, readyReplicas: 3, tokensPerSecond: 2100.5,
    conditions: [{ type: 'Ready', status: 'False', reason: 'Loading', message: '1 replica loading', lastTransitionTime: '2026-12-01T00:00:00Z' }],
  },
});

test('an autoscaled JambaDeployment: replicas, bounds, target, tokens/s and its conditions', () => {
  const byName = Object.fromEntries(jambaDeploymentSeries(autoscaled()).filter((s) => s.name !== 'jamba_jambadeployment_status_condition').map((s) => [s.name, s.value]));
  expect(byName).toEqual({
    jamba_jambadeployment_replicas_desired: 4,
    jamba_jambadeployment_replicas: 4,
    jamba_jambadeployment_replicas_ready: 3,
    jamba_jambadeployment_autoscaling_min_replicas: 1,
    jamba_jambadeployment_autoscaling_max_replicas: 4,
    jamba_jambadeployment_autoscaling_target_tokens_per_second: 500,
    jamba_jambadeployment_tokens_per_second: 2100.5,
  });
  const condition = jambaDeploymentSeries(autoscaled()).find((s) => s.name === 'jamba_jambadeployment_status_condition');
  expect(condition?.labels).toEqual({ namespace: 'ns', jambadeployment: 'large', condition: 'Ready', status: 'False', reason: 'Loading' });
});

test('not autoscaled and not reconciled yet: desired from the spec, no bounds', () => {
  const series = jambaDeploymentSeries(jambaDeployment({ replicas: 3 }));
  expect(series.map((s) => [s.name, s.value])).toEqual([
    ['jamba_jambadeployment_replicas_desired', 3],
    ['jamba_jambadeployment_replicas', 0],
    ['jamba_jambadeployment_replicas_ready', 0],
  ]);
});

test('each scrape reflects the cache: a deleted JambaDeployment disappears', async () => {
  const registry = new Registry();
  let cache: JambaDeployment[] = [autoscaled(), jambaDeployment({}, { name: 'mini' })];
  registerJambaDeploymentMetrics(registry, () => cache);
  let e = parseExposition(await registry.metrics());
  expect(sampleSum(e, 'jamba_jambadeployment_replicas_ready', { jambadeployment: 'large' })).toBe(3);
  expect(sampleSum(e, 'jamba_jambadeployment_replicas_desired', { namespace: 'ns', jambadeployment: 'mini' })).toBe(1);
  cache = [cache[1]!];
  e = parseExposition(await registry.metrics());
  expect(e.samples.filter((s) => s.labels.jambadeployment === 'large')).toEqual([]);
  expect(e.types.get('jamba_jambadeployment_autoscaling_max_replicas')).toBe('gauge');
});

test('scaling decisions: both directions exist at 0 for every JambaDeployment before the first one', async () => {
  const { OperatorMetrics } = await import('./metrics.js');
  const m = new OperatorMetrics({ jambaDeployments: () => [jambaDeployment({}, { name: 'mini' })] });
  let e = parseExposition(await m.registry.metrics());
  expect(sampleSum(e, 'jamba_operator_scaling_decisions_total', { jambadeployment: 'mini', direction: 'up' })).toBe(0);
  expect(sampleSum(e, 'jamba_operator_scaling_decisions_total', { jambadeployment: 'mini', direction: 'down' })).toBe(0);
  m.scalingDecisions.inc({ namespace: 'ns', jambadeployment: 'mini', direction: 'down' });
  e = parseExposition(await m.registry.metrics());
  expect(sampleSum(e, 'jamba_operator_scaling_decisions_total', { jambadeployment: 'mini', direction: 'down' })).toBe(1);
});
