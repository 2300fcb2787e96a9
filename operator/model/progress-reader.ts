// Reads a model's progress from one pod over HTTP: a download's /progress (the JSON that
// `jamba-runtime download --metrics-port` serves) and a loading runtime's jamba_model_load_progress_ratio
// from its /metrics. Best effort: a pod that does not answer, or answers garbage, has no reading.
// Which pods to read, and when, is the collector's (progress-collector.ts).
import { parseExposition } from '../../common/exposition.js';
import { JAMBA_SERIES } from '../../runtime/metrics/series.js';
import { parseSnapshot, type DownloadSnapshot } from '../controller/model-status.js';
import { PodHttp } from '../pods/pod-http.js';

export interface ModelProgressReader {
  /** GET http://address/progress of a running download. */
  download(address: string): Promise<DownloadSnapshot | undefined>;
  /** GET http://address/metrics of a loading runtime: its load progress ratio. */
  loadRatio(address: string): Promise<number | undefined>;
}

function parseLoadRatio(text: string): number | undefined {
  const samples = parseExposition(text).samples.filter((s) => s.name === JAMBA_SERIES.loadProgress);
  return samples.length > 0 ? Math.min(...samples.map((s) => s.value)) : undefined;
}

export class HttpModelProgressReader implements ModelProgressReader {
  private readonly http: PodHttp;

  constructor(timeoutMs = 1000) {
    this.http = new PodHttp({ timeoutMs });
  }

  /** The page at address+path read by `parse`; undefined when it cannot be fetched or parsed. */
  private async read<T>(address: string, path: string, parse: (text: string) => T | undefined): Promise<T | undefined> {
    try {
      return parse(await this.http.get(address, path));
    } catch {
      return undefined;
    }
  }

  download(address: string): Promise<DownloadSnapshot | undefined> {
    return this.read(address, '/progress', parseSnapshot);
  }

  loadRatio(address: string): Promise<number | undefined> {
    return this.read(address, '/metrics', parseLoadRatio);
  }

  async close(): Promise<void> {
    await this.http.close();
  }
}
