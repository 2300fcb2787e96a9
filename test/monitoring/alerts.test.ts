// The chart's alerts under the real promtool: the rendered PrometheusRule passes `promtool check rules`,
// and `promtool test rules` (alerts.promtool.yaml) shows each alert firing when it should and staying
// silent when it should not. Every alert has a runbook section in docs/RUNBOOKS.md.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { repoRoot, run, toolPath } from '../harness/exec.js';
import { renderedRuleGroups, type AlertRule } from './chart.js';

const TESTS = path.join(repoRoot, 'test', 'monitoring', 'alerts.promtool.yaml');
let dir: string;
let groups: Array<{ name: string; rules: AlertRule[] }>;
const alerts = () => groups.flatMap((g) => g.rules);

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'jamba-alerts-'));
  // The names the test file expects: jobs jamba-operator-metrics and jamba-system/jamba-operator-runtime.
  groups = await renderedRuleGroups({ release: 'jamba-operator', namespace: 'jamba-system' });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('promtool check rules accepts the rendered rules, annotation templates included', async () => {
  const file = path.join(dir, 'full.yaml');
  writeFileSync(file, stringify({ groups }));
  const { stdout } = await run(toolPath('promtool'), ['check', 'rules', file]);
  expect(stdout).toContain('SUCCESS: 9 rules found');
});

test('promtool test rules: every alert fires and stays silent as its cases say', async () => {
  // Firing semantics only: annotations (checked above) would make every case restate its prose.
  const semantic = groups.map((g) => ({ ...g, rules: g.rules.map(({ annotations: _a, ...rule }) => rule) }));
  writeFileSync(path.join(dir, 'rules.yaml'), stringify({ groups: semantic }));
  copyFileSync(TESTS, path.join(dir, 'tests.yaml'));
  const { stdout } = await run(toolPath('promtool'), ['test', 'rules', path.join(dir, 'tests.yaml')]);
  expect(stdout).toContain('SUCCESS');
});

test('the cases cover every alert, each both firing and silent', () => {
  type Case = { alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> };
  const cases = (parse(readFileSync(TESTS, 'utf8')) as { tests: Case[] }).tests.flatMap((t) => t.alert_rule_test);
  for (const { alert } of alerts()) {
    const mine = cases.filter((c) => c.alertname === alert);
    expect({ alert, fires: mine.some((c) => c.exp_alerts.length > 0), silent: mine.some((c) => c.exp_alerts.length === 0) })
      .toEqual({ alert, fires: true, silent: true });
  }
});

test('each alert links to its runbook section, and the section exists', () => {
  const runbooks = readFileSync(path.join(repoRoot, 'docs', 'RUNBOOKS.md'), 'utf8');
  // GitHub's heading anchors: lower case, spaces to dashes, punctuation dropped.
  const anchors = new Set([...runbooks.matchAll(/^#{2,3} (.+)$/gm)].map((m) => m[1]!.toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-')));
  for (const rule of alerts()) {
    const url = rule.annotations?.runbook_url ?? '';
    const anchor = url.slice(url.indexOf('#') + 1);
    expect({ alert: rule.alert, anchor, documented: anchors.has(anchor) }).toEqual({ alert: rule.alert, anchor: rule.alert.toLowerCase(), documented: true });
    expect(rule.annotations?.summary).toBeTruthy();
    expect(rule.annotations?.description).toBeTruthy();
    expect(['warning', 'critical']).toContain(rule.labels?.severity);
  }
});
