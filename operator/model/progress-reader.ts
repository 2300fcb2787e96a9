// Reads a model's progress from its pods over HTTP: a download's /progress (the JSON that
// `jamba-runtime download --metrics-port` serves) and a loading runtime's jamba_model_load_progress_ratio
// from its /metrics. Short timeouts; a pod that does not answer has no reading this round.
import type { V1Pod } from '@kubernetes/client-node';
import { Agent, request } from 'undici';
import { parseExposition } from '../../common/exposition.js';
import { JAMBA_SERIES } from '../../runtime/metrics/series.js';
import { CONTAINER_NAME, DOWNLOAD_CONTAINER, DOWNLOAD_PROGRESS_PORT } from '../controller/labels.js';
import type { DownloadSnapshot, ModelReadings } from '../controller/model-status.js';

export interface ModelProgressReader {
  /** GET http://address/progress of a running download. */
  download(address: string): Promise<DownloadSnapshot | undefined>;
  /** GET http://address/metrics of a loading runtime: its load progress ratio. */
  loadRatio(address: string): Promise<number | undefined>;
}

export class HttpModelProgressReader implements ModelProgressReader {
  private readonly agent: Agent;

  constructor(private readonly timeoutMs = 1000) {
    this.agent = new Agent({ connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  }

  /** The page at `url` read by `parse`; undefined when it cannot be fetched or parsed (progress is best effort). */
  private async read<T>(url: string, parse: (text: string) => T | undefined): Promise<T | undefined> {
    try {
      const res = await request(url, { dispatcher: this.agent, signal: AbortSignal.timeout(this.timeoutMs) });
      const text = await res.body.text();
      return res.statusCode === 200 ? parse(text) : undefined;
    } catch {
      return undefined;
    }
  }

  download(address: string): Promise<DownloadSnapshot | undefined> {
    return this.read(`http://${address}/progress`, (text) => JSON.parse(text) as DownloadSnapshot);
  }

  loadRatio(address: string): Promise<number | undefined> {
    return this.read(`http://${address}/metrics`, (text) => {
      const samples = parseExposition(text).samples.filter((s) => s.name === JAMBA_SERIES.loadProgress);
      return samples.length > 0 ? Math.min(...samples.map((s) => s.value)) : undefined;
    });
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

function ready(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/**
 * Which pods have progress to read: a running download (a Job's pod, or a serving pod's init container)
 * and a runtime that runs but is not ready yet (loading its weights).
 */
export async function readModelProgress(reader: ModelProgressReader, jobPods: V1Pod[], servingPods: V1Pod[], runtimePort: number): Promise<ModelReadings> {
  const readings: ModelReadings = { download: new Map(), load: new Map() };
  const tasks: Promise<void>[] = [];
  const live = (p: V1Pod) => !p.metadata?.deletionTimestamp && p.status?.podIP && p.metadata?.name;
  for (const pod of jobPods.filter(live)) {
    if (pod.status?.containerStatuses?.some((c) => c.name === DOWNLOAD_CONTAINER && c.state?.running)) {
      tasks.push(reader.download(`${pod.status!.podIP}:${DOWNLOAD_PROGRESS_PORT}`).then((s) => void (s && readings.download.set(pod.metadata!.name!, s))));
    }
  }
  for (const pod of servingPods.filter(live)) {
    if (pod.status?.initContainerStatuses?.some((c) => c.name === DOWNLOAD_CONTAINER && c.state?.running)) {
      tasks.push(reader.download(`${pod.status!.podIP}:${DOWNLOAD_PROGRESS_PORT}`).then((s) => void (s && readings.download.set(pod.metadata!.name!, s))));
    } else if (!ready(pod) && pod.status?.containerStatuses?.some((c) => c.name === CONTAINER_NAME && c.state?.running)) {
      tasks.push(reader.loadRatio(`${pod.status!.podIP}:${runtimePort}`).then((r) => void (r !== undefined && readings.load.set(pod.metadata!.name!, r))));
    }
  }
  await Promise.all(tasks);
  return readings;
}
