// Downloads one revision of a Hub repository into a directory, atomically: files land under
// temporary names in DIR/.jamba-download/ and are renamed into place once verified, and the marker
// DIR/.jamba-download-complete.json (naming the repository, the revision and its commit) is written
// last. A run that finds the marker for the same revision does nothing; one that finds temporary files
// of an interrupted run resumes them. Files are flushed to disk before they count as verified, unless
// `fsync` is off: then the record names the boot, and another boot hashes them again (durability.ts).
import { mkdir, open, readFile, rename, rm, stat, statfs } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { BackgroundFlush } from './background-flush.js';
import { currentBootId, durabilityOf, trustedWithoutRehash, type Durability } from './durability.js';
import { DownloadError, formatBytes } from './errors.js';
import { fetchFile, verifyOnDisk, type FileTimings } from './file-fetch.js';
import { DEFAULT_INCLUDE, matchesFilter } from './filters.js';
import { HashWorkers } from './hash-worker.js';
import { DEFAULT_RETRY, HubHttp, type RetryPolicy } from './http.js';
import { listRevision, resolveUrl, type RepoFile } from './hub-api.js';
import { DownloadProgress } from './progress.js';
import { RequestScheduler } from './request-scheduler.js';

export const MARKER_FILE = '.jamba-download-complete.json';
export const STATE_DIR = '.jamba-download';
const VERIFY_ATTEMPTS = 3;

export interface CompletionMarker extends Partial<Durability> {
  repo: string;
  revision: string;
  commit: string;
  files: RepoFile[];
  bytes: number;
  completedAt: string;
}

/** A file of an unfinished download, verified and renamed into place (STATE_DIR/verified.json). */
interface VerifiedFile extends Durability {
  /** Its content's identity (fileKey): a new version of the file is not this one. */
  key: string;
}

export interface DownloadOptions {
  repo: string;
  revision: string;
  dir: string;
  endpoint: string;
  token?: string;
  include?: string[];
  exclude?: string[];
  /** Requests in flight at once, over all files. */
  connections?: number;
  /** Files fetched at once. */
  filesAtOnce?: number;
  /** Size of one ranged request. */
  chunkBytes?: number;
  /** Bytes of a file written between flushes to disk while it downloads (0: only the final one). */
  flushEveryBytes?: number;
  /**
   * Flush every file to disk before it counts as verified (default true). Off, the download ends as soon
   * as the bytes are verified in the page cache; a later run under another boot of the node hashes them again.
   */
  fsync?: boolean;
  /** The kernel's boot id (tests replace it to simulate a reboot). */
  bootId?: () => Promise<string | undefined>;
  retry?: RetryPolicy;
  idleTimeoutMs?: number;
  progress?: DownloadProgress;
  onRetry?: (info: { url: string; attempt: number; delayMs: number; reason: string }) => void;
  /** A file was verified and renamed into place (its last fetch's timings). */
  onFileDone?: (info: { path: string; bytes: number } & FileTimings) => void;
  /** Free bytes on the volume of `dir`; statfs by default (tests replace it to simulate a full disk). */
  freeBytes?: (dir: string) => Promise<number>;
  userAgent?: string;
}

export interface DownloadResult {
  marker: CompletionMarker;
  /** True when the marker was already there: nothing was listed or fetched. */
  alreadyComplete: boolean;
  /** Bytes fetched from the network by this run. */
  bytesFetched: number;
}

export const DOWNLOAD_DEFAULTS = { connections: 16, filesAtOnce: 4, chunkBytes: 32 * 1024 * 1024, flushEveryBytes: 64 * 1024 * 1024, idleTimeoutMs: 60_000 };

async function readMarker(dir: string): Promise<CompletionMarker | undefined> {
  try {
    return JSON.parse(await readFile(path.join(dir, MARKER_FILE), 'utf8')) as CompletionMarker;
  } catch {
    return undefined;
  }
}

/**
 * The marker of this revision, if every file it names is still there at its size and, where they were
 * not flushed under this boot, still hashes as listed (`rehash`).
 */
async function completeMarker(dir: string, repo: string, revision: string, trusted: (d: Partial<Durability>) => boolean, rehash: (f: RepoFile) => Promise<boolean>): Promise<CompletionMarker | undefined> {
  const m = await readMarker(dir);
  if (!m || m.repo !== repo || m.revision !== revision) return undefined;
  for (const f of m.files) {
    const st = await stat(path.join(dir, f.path)).catch(() => undefined);
    if (!st || st.size !== f.size) return undefined;
  }
  if (trusted(m)) return m;
  return (await Promise.all(m.files.map(rehash))).every(Boolean) ? m : undefined;
}

/**
 * verified.json; its first form mapped each path to its key alone, for files that were flushed. A record
 * a crash left torn (it is not flushed) counts as empty: those files are fetched again, not trusted.
 */
async function readVerified(file: string): Promise<Record<string, VerifiedFile>> {
  let raw: Record<string, VerifiedFile | string>;
  try {
    raw = JSON.parse(await readFile(file, 'utf8')) as Record<string, VerifiedFile | string>;
  } catch {
    return {};
  }
  if (typeof raw !== 'object' || raw === null) return {};
  return Object.fromEntries(Object.entries(raw).flatMap(([p, v]) => {
    if (typeof v === 'string') return [[p, { key: v, fsynced: true }]];
    return v && typeof v === 'object' && typeof v.key === 'string' ? [[p, v]] : [];
  }));
}

/** Flushes a file (one written without a flush by a run with `fsync` off), or a directory's entries. */
async function flushFile(file: string): Promise<void> {
  const fh = await open(file, 'r');
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/**
 * Written under a temporary name and renamed. `durable`: its bytes flushed before the rename and the
 * directory after it, so that a crash just after a flushed download leaves a readable marker (not an
 * empty file, which would send the next run to fetch everything again: the record of verified files is
 * gone by then).
 */
async function writeJsonAtomic(file: string, value: unknown, durable = false): Promise<void> {
  const tmp = `${file}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(`${JSON.stringify(value, null, 2)}\n`);
    if (durable) await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  if (!durable) return;
  // A file system that cannot sync a directory says EINVAL: there the rename is as durable as it gets.
  await flushFile(path.dirname(file)).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EINVAL') throw e;
  });
}

function writeMarker(dir: string, marker: CompletionMarker): Promise<void> {
  return writeJsonAtomic(path.join(dir, MARKER_FILE), marker, marker.fsynced !== false);
}

export async function statfsFreeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

function fileKey(f: RepoFile): string {
  return f.sha256 ?? f.blobId ?? `size-${f.size}`;
}

/** A name for the temporary files of `f` that changes when its content does (no resuming across versions). */
function tempBase(dir: string, f: RepoFile): string {
  return path.join(dir, STATE_DIR, `${f.path.replace(/\//g, '__')}.${fileKey(f).slice(0, 16)}`);
}

export function checkedDir(dir: string, file: string): string {
  const target = path.resolve(dir, file);
  if (!target.startsWith(path.resolve(dir) + path.sep)) throw new DownloadError('InvalidListing', `refusing a file outside the target directory: ${file}`);
  return target;
}

export async function download(o: DownloadOptions): Promise<DownloadResult> {
  const progress = o.progress ?? new DownloadProgress(o.repo, o.revision);
  await mkdir(o.dir, { recursive: true }).catch((e: unknown) => {
    const err = asDownloadError(e, o.dir);
    progress.fail(err.code, err.message);
    throw err;
  });
  const fsync = o.fsync ?? true;
  const boot = await (o.bootId ?? currentBootId)();
  const thisRun = durabilityOf(fsync, boot);
  const trusted = (d: Partial<Durability>) => trustedWithoutRehash(d, boot);
  // As many hashing threads as files in flight, but no more than cores (started as files need them).
  const filesAtOnce = Math.max(1, o.filesAtOnce ?? DOWNLOAD_DEFAULTS.filesAtOnce);
  const hashers = new HashWorkers(Math.min(filesAtOnce, availableParallelism()));
  /**
   * A file verified by an earlier run but not flushed under this boot: is it still what was verified?
   * Once per file and hash: a marker found changed hands the files it hashed on to the listing's pass.
   */
  const rehashed = new Map<string, Promise<boolean>>();
  const rehash = (f: RepoFile): Promise<boolean> => {
    const key = `${f.path}\n${fileKey(f)}`;
    let result = rehashed.get(key);
    if (!result) rehashed.set(key, (result = verifyOnDisk(f, path.join(o.dir, f.path), hashers)));
    return result;
  };
  /** A file accepted from an earlier run is made as durable as this run's own. */
  const settle = async (f: RepoFile, recorded: Partial<Durability>): Promise<void> => {
    if (fsync && recorded.fsynced === false) await flushFile(path.join(o.dir, f.path));
  };
  const http = new HubHttp({
    token: o.token, retry: o.retry ?? DEFAULT_RETRY, idleTimeoutMs: o.idleTimeoutMs ?? DOWNLOAD_DEFAULTS.idleTimeoutMs,
    connections: o.connections ?? DOWNLOAD_DEFAULTS.connections, userAgent: o.userAgent ?? 'jamba-runtime/0.1.0', onRetry: o.onRetry,
  });
  try {
    const existing = await completeMarker(o.dir, o.repo, o.revision, trusted, rehash);
    if (existing) {
      let marker = existing;
      if (!trusted(existing) || (fsync && existing.fsynced === false)) {
        for (const f of existing.files) await settle(f, existing);
        marker = { ...withoutDurability(existing), ...thisRun };
        await writeMarker(o.dir, marker);
      }
      progress.start(marker.commit, marker.files);
      for (const f of marker.files) progress.resumedFrom(f.path, f.size);
      progress.setPhase('Downloaded');
      return { marker, alreadyComplete: true, bytesFetched: 0 };
    }
    // A stale marker (another revision, or files missing) no longer describes the directory, but the
    // files it lists were verified: those still there at the size and hash the listing gives are kept.
    const stale = await readMarker(o.dir);
    return await fetchRevision(o, { progress, http, hashers, filesAtOnce, stale, thisRun, trusted, rehash, settle });
  } catch (error) {
    const e = error instanceof DownloadError ? error : asDownloadError(error, o.dir);
    progress.fail(e.code, e.message);
    throw e;
  } finally {
    await Promise.all([http.close(), hashers.close()]);
  }
}

interface RunContext {
  progress: DownloadProgress;
  http: HubHttp;
  hashers: HashWorkers;
  filesAtOnce: number;
  stale: CompletionMarker | undefined;
  thisRun: Durability;
  trusted: (d: Partial<Durability>) => boolean;
  rehash: (f: RepoFile) => Promise<boolean>;
  settle: (f: RepoFile, recorded: Partial<Durability>) => Promise<void>;
}

/** Lists the revision, keeps the files earlier runs verified, fetches the rest, and writes the marker. */
async function fetchRevision(o: DownloadOptions, c: RunContext): Promise<DownloadResult> {
  const { progress, http } = c;
  const listing = await listRevision(http, o.endpoint, o.repo, o.revision);
  const filter = { include: o.include ?? DEFAULT_INCLUDE, exclude: o.exclude ?? [] };
  const files = listing.files.filter((f) => matchesFilter(f.path, filter));
  if (files.length === 0) {
    throw new DownloadError('NoFiles', `${o.repo}@${o.revision}: none of its ${listing.files.length} files match --include ${filter.include.join(',')}${filter.exclude.length ? ` --exclude ${filter.exclude.join(',')}` : ''}`);
  }
  for (const f of files) checkedDir(o.dir, f.path);
  await rm(path.join(o.dir, MARKER_FILE), { force: true });
  progress.start(listing.commit, files);
  await mkdir(path.join(o.dir, STATE_DIR), { recursive: true });
  const verifiedPath = path.join(o.dir, STATE_DIR, 'verified.json');
  const verified = await readVerified(verifiedPath);
  if (c.stale?.repo === o.repo) {
    for (const f of c.stale.files) verified[f.path] ??= { key: fileKey(f), ...durabilityOf(c.stale.fsynced ?? true, c.stale.bootId) };
  }

  // Files in place as an earlier run verified them; those not flushed under another boot are hashed again (on the hashing threads at once).
  const kept = await Promise.all(files.map(async (f) => {
    const st = await stat(path.join(o.dir, f.path)).catch(() => undefined);
    const earlier = verified[f.path];
    return st?.size === f.size && earlier?.key === fileKey(f) && (c.trusted(earlier) || (await c.rehash(f))) ? earlier : undefined;
  }));
  const pending: RepoFile[] = [];
  for (const [i, f] of files.entries()) {
    const earlier = kept[i];
    if (!earlier) {
      pending.push(f);
      continue;
    }
    await c.settle(f, earlier);
    // Now flushed (settled) or hashed under this boot, it is as this run's own; else as recorded.
    const { key, ...recorded } = earlier;
    verified[f.path] = { key, ...(c.thisRun.fsynced || !c.trusted(earlier) ? c.thisRun : recorded) };
    progress.resumedFrom(f.path, f.size);
    progress.fileDone();
  }
  await checkSpace(o, pending);

  const requests = new RequestScheduler(http.options.connections, c.filesAtOnce, pending.length);
  const chunkBytes = o.chunkBytes ?? DOWNLOAD_DEFAULTS.chunkBytes;
  const flush = new BackgroundFlush(c.thisRun.fsynced ? (o.flushEveryBytes ?? DOWNLOAD_DEFAULTS.flushEveryBytes) : 0);
  let recording = Promise.resolve();
  const queue = [...pending];
  const worker = async (): Promise<void> => {
    for (let f = queue.shift(); f; f = queue.shift()) {
      const base = tempBase(o.dir, f);
      const target = path.join(o.dir, f.path);
      const fetchOptions = {
        http, file: f, url: resolveUrl(o.endpoint, o.repo, listing.commit, f.path), tmpPath: `${base}.incomplete`, partsPath: `${base}.parts.json`,
        chunkBytes, requests, flush, fsync: c.thisRun.fsynced, hashers: c.hashers, progress,
      };
      let timings: FileTimings | undefined;
      requests.open(f.path);
      try {
        for (let attempt = 1; !timings; attempt++) {
          try {
            timings = await fetchFile(fetchOptions);
          } catch (error) {
            if (!(error instanceof DownloadError && error.code === 'VerificationFailed' && attempt < VERIFY_ATTEMPTS)) throw error;
            o.onRetry?.({ url: f.path, attempt, delayMs: 0, reason: error.message });
            progress.restart(f.path);
          }
        }
      } finally {
        requests.close(f.path, timings !== undefined);
      }
      await mkdir(path.dirname(target), { recursive: true });
      await rename(fetchOptions.tmpPath, target);
      await rm(fetchOptions.partsPath, { force: true });
      verified[f.path] = { key: fileKey(f), ...c.thisRun };
      const snapshot = { ...verified };
      await (recording = recording.then(() => writeJsonAtomic(verifiedPath, snapshot)));
      progress.fileDone();
      o.onFileDone?.({ path: f.path, bytes: f.size, ...timings });
    }
  };
  await Promise.all(Array.from({ length: Math.min(c.filesAtOnce, pending.length) }, worker));

  // The marker's durability is the weakest of its files': those kept from a run without flushes under this boot.
  const unflushed = files.map((f) => verified[f.path]!).find((v) => !v.fsynced);
  const marker: CompletionMarker = {
    repo: o.repo, revision: o.revision, commit: listing.commit,
    files: files.map((f) => ({ path: f.path, size: f.size, ...(f.sha256 ? { sha256: f.sha256 } : {}), ...(f.blobId ? { blobId: f.blobId } : {}) })),
    bytes: files.reduce((s, f) => s + f.size, 0),
    completedAt: new Date().toISOString(),
    ...durabilityOf(!unflushed, unflushed?.bootId),
  };
  await writeMarker(o.dir, marker);
  await rm(path.join(o.dir, STATE_DIR), { recursive: true, force: true });
  progress.setPhase('Downloaded');
  return { marker, alreadyComplete: false, bytesFetched: progress.bytesFetched() };
}

function withoutDurability(m: CompletionMarker): Omit<CompletionMarker, keyof Durability> {
  const { fsynced: _f, bootId: _b, ...rest } = m;
  return rest;
}

/** A file-system failure says what to fix (a volume the download's user cannot write, most often). */
function asDownloadError(error: unknown, dir: string): DownloadError {
  const code = (error as { code?: string }).code;
  const message = (error as Error).message;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    const uid = typeof process.getuid === 'function' ? ` (uid ${process.getuid()})` : '';
    return new DownloadError('NotWritable', `cannot write to ${dir}${uid}: ${message}; make the volume writable by this user (in Kubernetes: fsGroup, or the volume's permissions)`);
  }
  if (code === 'ENOSPC') return new DownloadError('DiskFull', `disk full in ${dir}: ${message}`);
  return new DownloadError('HttpError', message);
}

/** Refuses to start when the volume cannot hold what is left to fetch, saying how much is needed. */
async function checkSpace(o: DownloadOptions, pending: RepoFile[]): Promise<void> {
  let needed = 0;
  for (const f of pending) {
    const tmp = await stat(`${tempBase(o.dir, f)}.incomplete`).catch(() => undefined);
    // Temporary files are sparse: what they already hold on disk counts as present.
    needed += Math.max(0, f.size - (tmp ? tmp.blocks * 512 : 0));
  }
  const free = await (o.freeBytes ?? statfsFreeBytes)(o.dir);
  if (needed > free) {
    throw new DownloadError('DiskFull', `not enough space in ${o.dir}: the download needs ${formatBytes(needed)} (${needed} bytes) more, ${formatBytes(free)} free; enlarge the volume (cache claim) or free space`);
  }
}
