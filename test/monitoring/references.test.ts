// No dashboard panel, dashboard variable or alert reads a metric the runtime or the operator does not
// export: each query is parsed by Prometheus's own parser (promql-operands) and every metric it selects
// must be one the real registries declare.
import { dashboardPromQL, promqlOperands, renderedRuleGroups } from './chart.js';
import { exportedSeriesNames } from './exported.js';

let exported: Set<string>;
beforeAll(async () => {
  exported = await exportedSeriesNames();
});

async function unknownMetrics(queries: Array<{ where: string; expr: string }>): Promise<string[]> {
  const parsed = await promqlOperands(queries.map((q) => q.expr));
  const problems: string[] = [];
  parsed.forEach((p, i) => {
    if (p.error) problems.push(`${queries[i]!.where}: ${p.error} in ${p.expr}`);
    for (const m of p.metrics ?? []) if (!exported.has(m)) problems.push(`${queries[i]!.where}: ${m} is not exported`);
  });
  return problems;
}

test('the check itself: a misspelt metric and a broken query are refused', async () => {
  expect(await unknownMetrics([
    { where: 'probe', expr: 'rate(jamba_generation_token_total[5m])' },
    { where: 'probe', expr: 'sum(' },
  ])).toEqual([
    'probe: jamba_generation_token_total is not exported',
    expect.stringMatching(/^probe: .*parse error/),
  ]);
});

test('every dashboard query reads exported metrics only', async () => {
  const queries = dashboardPromQL();
  expect(queries.length).toBeGreaterThan(20);
  expect(await unknownMetrics(queries)).toEqual([]);
});

test('every alert reads exported metrics only', async () => {
  const groups = await renderedRuleGroups();
  const queries = groups.flatMap((g) => g.rules.map((r) => ({ where: r.alert, expr: r.expr })));
  expect(queries.length).toBe(9);
  expect(await unknownMetrics(queries)).toEqual([]);
});
