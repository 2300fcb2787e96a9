// Prometheus scrape configs generated from a ServiceMonitor and a PodMonitor the way the Prometheus
// Operator generates them (Kubernetes SD in the namespaces the monitor's namespaceSelector names, then
// its relabelling: selector keeps, port keep, the namespace/pod/container/job/endpoint target labels,
// then the monitor's own relabelings), so that a real Prometheus applies the chart's monitors with their
// real semantics to the pods and endpoints the API server really has.
import type { K8sObject } from '../monitoring/chart.js';

type Labels = Record<string, string>;

export interface RelabelConfig {
  source_labels?: string[];
  separator?: string;
  target_label?: string;
  regex?: string;
  replacement?: string;
  action?: string;
}

export interface ScrapeConfig {
  job_name: string;
  honor_labels: boolean;
  metrics_path: string;
  scrape_interval: string;
  scrape_timeout: string;
  relabel_configs: RelabelConfig[];
  [sd: string]: unknown;
}

/** Kubernetes SD's label-name sanitising: anything but [a-zA-Z0-9_] becomes _. */
const sanitize = (name: string): string => name.replace(/[^a-zA-Z0-9_]/g, '_');
const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

interface Selector {
  matchLabels?: Labels;
  matchExpressions?: Array<{ key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }>;
}

function selectorKeeps(selector: Selector, prefix: 'pod' | 'service'): RelabelConfig[] {
  const label = (k: string) => `__meta_kubernetes_${prefix}_label_${sanitize(k)}`;
  const present = (k: string) => `__meta_kubernetes_${prefix}_labelpresent_${sanitize(k)}`;
  const keeps: RelabelConfig[] = Object.entries(selector.matchLabels ?? {}).map(([k, v]) => ({
    action: 'keep', source_labels: [label(k), present(k)], regex: `(${escapeRegex(v)});true`,
  }));
  for (const e of selector.matchExpressions ?? []) {
    const values = (e.values ?? []).map(escapeRegex).join('|');
    switch (e.operator) {
      case 'Exists': keeps.push({ action: 'keep', source_labels: [present(e.key)], regex: 'true' }); break;
      case 'DoesNotExist': keeps.push({ action: 'drop', source_labels: [present(e.key)], regex: 'true' }); break;
      case 'In': keeps.push({ action: 'keep', source_labels: [label(e.key), present(e.key)], regex: `(${values});true` }); break;
      case 'NotIn': keeps.push({ action: 'drop', source_labels: [label(e.key), present(e.key)], regex: `(${values});true` }); break;
    }
  }
  return keeps;
}

const copy = (from: string, to: string): RelabelConfig => ({ source_labels: [from], target_label: to });

/** The monitor's own relabelings, camelCase as in the CRD → Prometheus's snake_case. */
function userRelabelings(list: Array<Record<string, unknown>> | undefined): RelabelConfig[] {
  return (list ?? []).map((r) => ({
    ...(r.sourceLabels ? { source_labels: r.sourceLabels as string[] } : {}),
    ...(r.separator !== undefined ? { separator: r.separator as string } : {}),
    ...(r.targetLabel ? { target_label: r.targetLabel as string } : {}),
    ...(r.regex !== undefined ? { regex: r.regex as string } : {}),
    ...(r.replacement !== undefined ? { replacement: r.replacement as string } : {}),
    ...(r.action ? { action: (r.action as string).toLowerCase() } : {}),
  }));
}

export interface Discovery {
  /** The service discovery of a monitor's endpoint: { kubernetes_sd_configs: [...] } (kubernetesSd). */
  sd: (monitor: K8sObject, endpointIndex: number) => Record<string, unknown>;
  /** Overrides the monitors' intervals (tests scrape every second). */
  interval?: string;
  timeout?: string;
}

type Endpoint = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** One scrape config per endpoint of a monitor; `relabel` gives the generated rules before the monitor's own. */
function scrapeConfigs(kind: 'podMonitor' | 'serviceMonitor', monitor: K8sObject, endpoints: Endpoint[], d: Discovery, relabel: (ep: Endpoint) => RelabelConfig[]): ScrapeConfig[] {
  const { namespace, name } = monitor.metadata;
  return endpoints.map((ep, i) => ({
    job_name: `${kind}/${namespace}/${name}/${i}`,
    honor_labels: ep.honorLabels ?? false,
    metrics_path: ep.path ?? '/metrics',
    scrape_interval: d.interval ?? ep.interval,
    scrape_timeout: d.timeout ?? ep.scrapeTimeout,
    ...d.sd(monitor, i),
    relabel_configs: [...relabel(ep), { target_label: 'endpoint', replacement: ep.port }, ...userRelabelings(ep.relabelings)],
  }));
}

export function podMonitorScrapeConfigs(pm: K8sObject, d: Discovery): ScrapeConfig[] {
  const { namespace, name } = pm.metadata;
  return scrapeConfigs('podMonitor', pm, pm.spec.podMetricsEndpoints, d, (ep) => [
    { source_labels: ['__meta_kubernetes_pod_phase'], regex: '(Failed|Succeeded)', action: 'drop' },
    ...selectorKeeps(pm.spec.selector, 'pod'),
    { action: 'keep', source_labels: ['__meta_kubernetes_pod_container_port_name'], regex: ep.port },
    copy('__meta_kubernetes_namespace', 'namespace'),
    copy('__meta_kubernetes_pod_container_name', 'container'),
    copy('__meta_kubernetes_pod_name', 'pod'),
    { target_label: 'job', replacement: `${namespace}/${name}` },
  ]);
}

export function serviceMonitorScrapeConfigs(sm: K8sObject, d: Discovery): ScrapeConfig[] {
  const target = (kind: string, label: string): RelabelConfig => ({
    source_labels: ['__meta_kubernetes_endpoint_address_target_kind', '__meta_kubernetes_endpoint_address_target_name'],
    separator: ';', regex: `${kind};(.*)`, replacement: '${1}', target_label: label,
  });
  return scrapeConfigs('serviceMonitor', sm, sm.spec.endpoints, d, (ep) => [
    ...selectorKeeps(sm.spec.selector, 'service'),
    { action: 'keep', source_labels: ['__meta_kubernetes_endpoint_port_name'], regex: ep.port },
    target('Node', 'node'),
    target('Pod', 'pod'),
    copy('__meta_kubernetes_namespace', 'namespace'),
    copy('__meta_kubernetes_service_name', 'service'),
    copy('__meta_kubernetes_pod_name', 'pod'),
    copy('__meta_kubernetes_pod_container_name', 'container'),
    copy('__meta_kubernetes_service_name', 'job'),
  ]);
}

/**
 * Kubernetes SD against the API server a kubeconfig names, as the Prometheus Operator sets it up for a
 * monitor: role pod for a PodMonitor, endpoints for a ServiceMonitor (its default service discovery role),
 * in the namespaces of the monitor's namespaceSelector (`any`: all; `matchNames`; neither: its own).
 */
export function kubernetesSd(kubeconfigFile: string): Discovery['sd'] {
  return (monitor) => {
    const selector = (monitor.spec.namespaceSelector ?? {}) as { any?: boolean; matchNames?: string[] };
    const names = selector.matchNames?.length ? selector.matchNames : [monitor.metadata.namespace!];
    return {
      kubernetes_sd_configs: [{
        role: monitor.kind === 'PodMonitor' ? 'pod' : 'endpoints',
        kubeconfig_file: kubeconfigFile,
        ...(selector.any ? {} : { namespaces: { names } }),
      }],
    };
  };
}
