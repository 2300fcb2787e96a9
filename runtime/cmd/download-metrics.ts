// The download command's /metrics (Prometheus) and /progress (JSON) endpoint, in a module of its own so
// that prom-client is loaded only when --metrics-port asks for it.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Gauge, Registry } from 'prom-client';
import type { DownloadProgress, ProgressSnapshot } from '../download/progress.js';
import type { Logger } from '../server/log.js';

const PHASES = ['Listing', 'Downloading', 'Verifying', 'Downloaded', 'Failed'] as const;

/** Prometheus gauges read from the progress at scrape time. */
function progressRegistry(progress: DownloadProgress, retries: () => number): Registry {
  const registry = new Registry();
  const gauge = (name: string, help: string, pick: (s: ProgressSnapshot) => number | undefined) =>
    new Gauge({ name, help, registers: [registry], collect(this: Gauge) { const v = pick(progress.snapshot()); if (v !== undefined) this.set(v); } });
  gauge('jamba_download_bytes_done', 'Bytes of the selected files on disk (verified or in progress).', (s) => s.bytesDone);
  gauge('jamba_download_bytes_total', 'Bytes of the selected files.', (s) => s.bytesTotal);
  gauge('jamba_download_progress_ratio', 'Bytes done over bytes total (1 once verified).', (s) => (s.phase === 'Downloaded' ? 1 : s.bytesTotal ? s.bytesDone / s.bytesTotal : 0));
  gauge('jamba_download_throughput_bytes_per_second', 'Network throughput over the last seconds.', (s) => s.bytesPerSecond);
  gauge('jamba_download_eta_seconds', 'Estimated seconds left.', (s) => s.etaSeconds);
  gauge('jamba_download_files_done', 'Files verified and in place.', (s) => s.filesDone);
  gauge('jamba_download_files_total', 'Files selected.', (s) => s.filesTotal);
  gauge('jamba_download_retries', 'Requests retried so far (429, 5xx, cut connections, failed verification).', () => retries());
  new Gauge({
    name: 'jamba_download_phase', help: 'The phase the download is in (1 for the current one).', labelNames: ['phase'], registers: [registry],
    collect(this: Gauge) { const p = progress.snapshot().phase; for (const name of PHASES) this.set({ phase: name }, name === p ? 1 : 0); },
  });
  return registry;
}

/** Serves /metrics (Prometheus) and /progress (JSON) on `port`. */
export async function startProgressServer(port: number, host: string, progress: DownloadProgress, retries: () => number, log: Logger): Promise<Server> {
  const registry = progressRegistry(progress, retries);
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      void registry.metrics().then((text) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(text);
      });
    } else if (req.url === '/progress') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(progress.snapshot()));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  log('info', 'progress endpoint', { address: `${host}:${(server.address() as AddressInfo).port}`, paths: ['/metrics', '/progress'] });
  return server;
}
