// `jamba-runtime download`: fetch a checkpoint from the Hugging Face Hub (or a mirror) into a directory.
// Progress goes to the logs (JSON lines), to an optional /metrics + /progress HTTP endpoint, to an
// optional progress file, and the final state to the termination message the operator reads.
import { writeFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { download, DOWNLOAD_DEFAULTS } from '../download/download.js';
import { DownloadError, PERMANENT_ERRORS, PERMANENT_FAILURE_EXIT_CODE, formatBytes } from '../download/errors.js';
import { DEFAULT_INCLUDE } from '../download/filters.js';
import { hubEndpoint, hubToken } from '../download/hub-api.js';
import { DownloadProgress, type ProgressSnapshot } from '../download/progress.js';
import { jsonLogger, type Logger } from '../server/log.js';
import { UsageError } from './usage-error.js';

export interface DownloadConfig {
  repo: string;
  revision: string;
  dir: string;
  include: string[];
  exclude: string[];
  connections: number;
  filesAtOnce: number;
  chunkBytes: number;
  /** Flush files to disk before they count as verified (`--no-fsync` turns it off). */
  fsync: boolean;
  progressIntervalSeconds: number;
  progressFile?: string;
  metricsPort?: number;
  metricsHost: string;
  terminationMessagePath?: string;
}

export function downloadUsage(): string {
  return `Usage: jamba-runtime download --repo REPO [--revision REV] --dir DIR [options]

Downloads a revision of a Hugging Face Hub model repository into DIR: parallel ranged requests, resumed
after an interruption, every file verified (sha256 for LFS files, git blob id for the rest) before it is
renamed into place, then DIR/.jamba-download-complete.json names the revision. Running it again for the
same revision does nothing. Environment: HF_ENDPOINT (a mirror; default https://huggingface.co),
HF_TOKEN (gated or private repositories).

Options:
  --repo REPO                   e.g. ai21labs/AI21-Jamba-1.5-Mini
  --revision REV                branch, tag or commit                            [default: main]
  --dir DIR                     target directory (created)
  --include GLOB                files to fetch (repeatable)  [default: ${DEFAULT_INCLUDE.join(' ')}]
  --exclude GLOB                files to skip (repeatable)
  --all-files                   fetch every file of the revision
  --connections N               requests in flight at once                       [default: ${DOWNLOAD_DEFAULTS.connections}]
  --files-at-once N             files fetched at once                            [default: ${DOWNLOAD_DEFAULTS.filesAtOnce}]
  --chunk-size MIB              size of one ranged request                       [default: ${DOWNLOAD_DEFAULTS.chunkBytes / 1048576}]
  --no-fsync                    do not flush files to disk before marking them verified: done as soon as
                                the bytes are verified in the page cache (for a pod's own emptyDir). A
                                later run under another boot, or on another node, hashes them again
  --progress-interval SECONDS   how often progress is logged and written         [default: 5]
  --progress-file PATH          progress as JSON, rewritten every interval
  --metrics-port N              serve /metrics (Prometheus) and /progress (JSON) on this port
  --metrics-host HOST           address for --metrics-port                       [default: 0.0.0.0]
  --termination-message-path P  the final state as JSON (Kubernetes: /dev/termination-log)
  -h, --help                    show this help
`;
}

function int(name: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min) throw new UsageError(`--${name} must be an integer >= ${min}, got '${value}'`);
  return Number(value);
}

export function parseDownloadArgs(argv: string[]): DownloadConfig | 'help' {
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv, strict: true, allowPositionals: false,
      options: {
        repo: { type: 'string' }, revision: { type: 'string' }, dir: { type: 'string' },
        include: { type: 'string', multiple: true }, exclude: { type: 'string', multiple: true }, 'all-files': { type: 'boolean' },
        connections: { type: 'string' }, 'files-at-once': { type: 'string' }, 'chunk-size': { type: 'string' }, 'no-fsync': { type: 'boolean' },
        'progress-interval': { type: 'string' }, 'progress-file': { type: 'string' },
        'metrics-port': { type: 'string' }, 'metrics-host': { type: 'string' }, 'termination-message-path': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (cause) {
    throw new UsageError((cause as Error).message);
  }
  if (values['help']) return 'help';
  const str = (k: string) => values[k] as string | undefined;
  const repo = str('repo');
  if (!repo || !/^[\w.-]+(\/[\w.-]+)?$/.test(repo)) throw new UsageError(`--repo must name a repository like org/name, got '${repo ?? ''}'`);
  const dir = str('dir');
  if (!dir) throw new UsageError('--dir DIR is required');
  const revision = str('revision') ?? 'main';
  if (revision === '') throw new UsageError('--revision must not be empty');
  if (values['all-files'] && values['include']) throw new UsageError('--all-files and --include exclude each other');
  const metricsPort = str('metrics-port') !== undefined ? int('metrics-port', str('metrics-port'), 0, 0) : undefined;
  if (metricsPort !== undefined && metricsPort > 65535) throw new UsageError(`--metrics-port must be at most 65535, got ${metricsPort}`);
  return {
    repo, revision, dir,
    include: values['all-files'] ? ['**'] : ((values['include'] as string[] | undefined) ?? DEFAULT_INCLUDE),
    exclude: (values['exclude'] as string[] | undefined) ?? [],
    connections: int('connections', str('connections'), DOWNLOAD_DEFAULTS.connections, 1),
    filesAtOnce: int('files-at-once', str('files-at-once'), DOWNLOAD_DEFAULTS.filesAtOnce, 1),
    chunkBytes: int('chunk-size', str('chunk-size'), DOWNLOAD_DEFAULTS.chunkBytes / 1048576, 1) * 1048576,
    fsync: !values['no-fsync'],
    progressIntervalSeconds: int('progress-interval', str('progress-interval'), 5, 1),
    ...(str('progress-file') ? { progressFile: str('progress-file') } : {}),
    ...(metricsPort !== undefined ? { metricsPort } : {}),
    metricsHost: str('metrics-host') ?? '0.0.0.0',
    ...(str('termination-message-path') ? { terminationMessagePath: str('termination-message-path') } : {}),
  };
}

function progressFields(s: ProgressSnapshot): Record<string, unknown> {
  return {
    phase: s.phase, percent: s.percent, bytes_done: s.bytesDone, bytes_total: s.bytesTotal, files_done: s.filesDone, files_total: s.filesTotal,
    throughput_bytes_per_second: s.bytesPerSecond, throughput: `${formatBytes(s.bytesPerSecond)}/s`,
    ...(s.etaSeconds !== undefined ? { eta_seconds: s.etaSeconds } : {}),
  };
}

export async function runDownload(c: DownloadConfig, log: Logger = jsonLogger, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const progress = new DownloadProgress(c.repo, c.revision);
  const endpoint = hubEndpoint(env);
  const token = hubToken(env);
  let retries = 0;
  const tails = { hash: 0, sync: 0 };
  // prom-client and node:http only when asked for: most runs (a Job's pod) start faster without them.
  const server = c.metricsPort !== undefined
    ? await (await import('./download-metrics.js')).startProgressServer(c.metricsPort, c.metricsHost, progress, () => retries, log)
    : undefined;
  let writing = Promise.resolve();
  const report = (): Promise<void> => {
    const s = progress.snapshot();
    if (s.phase === 'Downloading' || s.phase === 'Verifying') log('info', 'download progress', progressFields(s));
    if (c.progressFile) {
      const file = c.progressFile;
      writing = writing.then(() => writeFile(`${file}.tmp`, JSON.stringify(s)).then(() => rename(`${file}.tmp`, file))).catch(() => {});
    }
    return writing;
  };
  const timer = setInterval(() => void report(), c.progressIntervalSeconds * 1000);
  log('info', 'download starting', { repo: c.repo, revision: c.revision, dir: c.dir, endpoint, token: token ? 'set' : 'none', include: c.include, exclude: c.exclude, fsync: c.fsync });
  const started = Date.now();
  let code = 0;
  try {
    const result = await download({
      repo: c.repo, revision: c.revision, dir: c.dir, endpoint, token, include: c.include, exclude: c.exclude,
      connections: c.connections, filesAtOnce: c.filesAtOnce, chunkBytes: c.chunkBytes, fsync: c.fsync, progress,
      onRetry: (r) => {
        retries++;
        log('warn', 'retrying', { what: r.url, attempt: r.attempt, delay_ms: r.delayMs, reason: r.reason });
      },
      // What follows a file's last byte (its hash, its flush) is what a download waits on at its end: the
      // longest of each goes in the last log line.
      onFileDone: (f) => {
        tails.hash = Math.max(tails.hash, f.hashAfterLastByteMs);
        tails.sync = Math.max(tails.sync, f.syncAfterLastByteMs);
      },
    });
    const seconds = (Date.now() - started) / 1000;
    log('info', result.alreadyComplete ? 'already downloaded: nothing to do' : 'download complete', {
      repo: c.repo, revision: c.revision, commit: result.marker.commit, files: result.marker.files.length, bytes: result.marker.bytes,
      bytes_fetched: result.bytesFetched, seconds, throughput_bytes_per_second: seconds > 0 ? Math.round(result.bytesFetched / seconds) : 0,
      longest_hash_after_last_byte_ms: Math.round(tails.hash), longest_sync_after_last_byte_ms: Math.round(tails.sync),
    });
  } catch (error) {
    if (!(error instanceof DownloadError)) throw error;
    log('error', 'download failed', { code: error.code, error: error.message });
    process.stderr.write(`jamba-runtime download: ${error.message}\n`);
    code = PERMANENT_ERRORS.has(error.code) ? PERMANENT_FAILURE_EXIT_CODE : 1;
  } finally {
    clearInterval(timer);
    await report();
    if (c.terminationMessagePath) {
      // Kubernetes keeps at most 4096 bytes of it.
      try {
        writeFileSync(c.terminationMessagePath, JSON.stringify(progress.snapshot()).slice(0, 4096));
      } catch (error) {
        log('warn', 'could not write the termination message', { path: c.terminationMessagePath, error: (error as Error).message });
      }
    }
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  return code;
}
