// The chart as Helm renders it (the real helm from .tools/bin, no cluster needed), and the queries it ships.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { dashboardQueries, grafanaToPromQL } from '../../tools/monitoring/dashboards.js';
import { repoRoot, run, toolPath } from '../harness/exec.js';

export const CHART_DIR = path.join(repoRoot, 'charts', 'jamba-operator');
/** The Kubernetes version the local cluster runs (helm template otherwise assumes v1.20). */
export const KUBE_VERSION = '1.36.3';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  /** --set-string / --set pairs. */
  set?: Record<string, string | number | boolean>;
}

export function templateArgs(o: RenderOptions = {}): string[] {
  const sets = Object.entries(o.set ?? {}).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
  return [o.release ?? 'jamba', CHART_DIR, '--namespace', o.namespace ?? 'jamba-system', '--kube-version', KUBE_VERSION, ...sets];
}

/** `helm template` output, as text. */
export async function helmTemplateText(o: RenderOptions = {}): Promise<string> {
  return (await run(toolPath('helm'), ['template', ...templateArgs(o)])).stdout;
}

/** `helm template` output, as objects. */
export async function helmTemplate(o: RenderOptions = {}): Promise<K8sObject[]> {
  return parseAllDocuments(await helmTemplateText(o)).map((d) => d.toJS() as K8sObject).filter((x) => x);
}

export function findObject(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, rendered ${found.length}`);
  return found[0]!;
}

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** The rule groups of the rendered PrometheusRule (a Prometheus rules file's content). */
export async function renderedRuleGroups(o: RenderOptions = {}): Promise<Array<{ name: string; rules: AlertRule[] }>> {
  return findObject(await helmTemplate(o), 'PrometheusRule').spec.groups;
}

/** The committed dashboards' JSON. */
export function committedDashboards(): Array<{ file: string; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const dir = path.join(CHART_DIR, 'dashboards');
  return readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((file) => ({ file, json: JSON.parse(readFileSync(path.join(dir, file), 'utf8')) }));
}

/** Every dashboard query as PromQL, with where it comes from. */
export function dashboardPromQL(rateInterval?: string): Array<{ where: string; expr: string }> {
  return committedDashboards().flatMap(({ file, json }) => dashboardQueries(json).map((q) => ({ where: file, expr: grafanaToPromQL(q, rateInterval) })));
}

export interface Operands {
  expr: string;
  metrics?: string[];
  operands?: string[];
  error?: string;
}

/** Prometheus's own parser (tools/go/prometheus/promql-operands): metrics read and operands that must return data. */
export async function promqlOperands(exprs: string[]): Promise<Operands[]> {
  const { stdout } = await run(toolPath('promql-operands'), [], { input: JSON.stringify(exprs) });
  return JSON.parse(stdout) as Operands[];
}
