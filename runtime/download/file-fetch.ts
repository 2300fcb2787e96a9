// Fetches one file into a temporary name: ranged requests in parallel (chunks), each written at its
// offset as it streams in (nothing held whole in memory), a record of finished chunks beside it so a
// restarted process resumes, and the hash computed over the finished prefix while later chunks are
// still arriving. The caller renames the file once `fetchFile` returns (verified).
import { createHash } from 'node:crypto';
import { open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { DownloadError, formatBytes } from './errors.js';
import type { BackgroundFlush } from './background-flush.js';
import { ChunkWriter } from './chunk-writer.js';
import { choosePlan, chunkAt, parsePlan, planChunks, type Chunk, type ChunkPlan } from './chunk-plan.js';
import { failureOf, RetryableStatus, type BodyReceiver, type HubHttp, type Received } from './http.js';
import type { RepoFile } from './hub-api.js';
import type { HashWorkers } from './hash-worker.js';
import { PrefixHash } from './prefix-hash.js';
import type { DownloadProgress } from './progress.js';
import type { RequestScheduler } from './request-scheduler.js';

/** The hash the Hub publishes for a file: sha256 for LFS files, the git blob id (sha1) for the rest. */
function expectedHash(file: RepoFile): { algorithm: 'sha256' | 'sha1'; prefix?: string; expected: string; name: string } | undefined {
  if (file.sha256) return { algorithm: 'sha256', expected: file.sha256, name: 'sha256' };
  if (file.blobId) return { algorithm: 'sha1', prefix: `blob ${file.size}\0`, expected: file.blobId, name: 'git blob id' };
  return undefined;
}

/** Files at least this large are hashed on a worker thread (the download's HashWorkers); smaller ones inline. */
const WORKER_HASH_MIN_BYTES = 16 * 1024 * 1024;

/** Hashes the file's growing prefix: inline (PrefixHash) or on a worker thread (WorkerHash). */
interface StreamHasher {
  /** `bytes` were written at `pos` (before the written counts include them). */
  wrote(pos: number, bytes: Buffer): void;
  /** The counts of bytes on disk grew. */
  catchUp(): Promise<void>;
  finish(): Promise<{ digest: string; hashedBytes: number }>;
  abort(): Promise<void>;
}

function streamHasher(v: NonNullable<ReturnType<typeof expectedHash>>, fh: FileHandle, o: FetchFileOptions, onDisk: (pos: number) => number): StreamHasher {
  const size = o.file.size;
  if (size >= WORKER_HASH_MIN_BYTES) {
    const w = o.hashers.open(o.tmpPath, v.algorithm, v.prefix);
    let frontier = 0;
    return {
      wrote: () => {},
      catchUp: async () => {
        for (let n = onDisk(frontier); n > 0; n = onDisk(frontier)) frontier += n;
        w.advance(frontier);
      },
      finish: () => w.finish(size),
      abort: () => w.abort(),
    };
  }
  const hash = createHash(v.algorithm);
  if (v.prefix) hash.update(v.prefix);
  const p = new PrefixHash(hash, fh, onDisk);
  return {
    wrote: (pos, bytes) => p.wrote(pos, bytes),
    catchUp: () => p.catchUp(),
    finish: async () => {
      await p.catchUp();
      return { digest: p.digest(), hashedBytes: p.hashedBytes };
    },
    abort: async () => {},
  };
}

export interface FetchFileOptions {
  http: HubHttp;
  url: string;
  file: RepoFile;
  tmpPath: string;
  /** JSON record of the chunk plan and the finished chunks, for resuming. */
  partsPath: string;
  chunkBytes: number;
  /** The download's requests in flight, shared among its files (the file is open there). */
  requests: RequestScheduler;
  /** Writes back the download's files while they arrive. */
  flush: BackgroundFlush;
  /** Flush the file to disk before returning (off: `--no-fsync`, see durability.ts). */
  fsync: boolean;
  /** The threads that hash large files, shared by the download's files. */
  hashers: HashWorkers;
  progress: DownloadProgress;
}

/** The plan and finished chunks an earlier run recorded, if its temporary file is still there at full size. */
async function resumable(o: FetchFileOptions): Promise<{ plan: ChunkPlan; done: number[] } | undefined> {
  try {
    const [st, parts] = await Promise.all([stat(o.tmpPath), readFile(o.partsPath, 'utf8')]);
    const record = JSON.parse(parts) as { size?: number; chunkBytes?: number; ramp?: number; done?: number[] };
    const plan = parsePlan(record);
    if (st.size !== o.file.size || record.size !== o.file.size || !plan) return undefined;
    return { plan, done: Array.isArray(record.done) ? record.done : [] };
  } catch {
    return undefined;
  }
}

export async function removeTemp(o: Pick<FetchFileOptions, 'tmpPath' | 'partsPath'>): Promise<void> {
  await rm(o.tmpPath, { force: true });
  await rm(o.partsPath, { force: true });
}

function diskFull(error: unknown, o: FetchFileOptions): never {
  if ((error as { code?: string }).code === 'ENOSPC') {
    throw new DownloadError('DiskFull', `disk full while writing ${o.file.path} (${formatBytes(o.file.size)}): free space on the volume and run again; finished parts are kept`);
  }
  throw error;
}

/**
 * Whether the file at `absPath` (already at its listed size) holds what the listing's hash says: read
 * back on a hashing thread. A file the Hub gives no hash for cannot be checked (false: fetch it again).
 */
export async function verifyOnDisk(file: RepoFile, absPath: string, hashers: HashWorkers): Promise<boolean> {
  const v = expectedHash(file);
  if (!v) return false;
  const result = await hashers.open(absPath, v.algorithm, v.prefix).finish(file.size).catch(() => undefined);
  return result?.hashedBytes === file.size && result.digest === v.expected;
}

/** How long a file's hash and its flush to disk took after its last byte. */
export interface FileTimings {
  hashAfterLastByteMs: number;
  syncAfterLastByteMs: number;
}

/** Downloads and verifies `o.file` into `o.tmpPath`. Throws VerificationFailed (temp files removed) on a hash mismatch. */
export async function fetchFile(o: FetchFileOptions): Promise<FileTimings> {
  // A restart resumes with the plan its chunks were cut by, whatever the settings now.
  const earlier = await resumable(o);
  const plan = earlier?.plan ?? choosePlan(o.file.size, o.chunkBytes, o.requests.share());
  const chunks = planChunks(o.file.size, plan);
  const done = new Set((earlier?.done ?? []).filter((i) => Number.isInteger(i) && i >= 0 && i < chunks.length));
  let fh: FileHandle;
  if (done.size > 0) fh = await open(o.tmpPath, 'r+');
  else {
    fh = await open(o.tmpPath, 'w+').catch((e) => diskFull(e, o));
    await fh.truncate(o.file.size).catch((e) => diskFull(e, o));
  }
  let hasher: StreamHasher | undefined;
  try {
    for (const i of done) o.progress.resumedFrom(o.file.path, chunks[i]!.length);
    const verifier = expectedHash(o.file);
    const flushed = o.flush.track(fh);
    // Bytes on disk per chunk, contiguous from its start.
    const written = chunks.map((c) => (done.has(c.index) ? c.length : 0));
    const onDisk = (pos: number): number => {
      const c = chunkAt(chunks, pos);
      return c ? c.start + written[c.index]! - pos : 0;
    };
    hasher = verifier ? streamHasher(verifier, fh, o, onDisk) : undefined;
    const h = hasher;
    const sink: ChunkSink = {
      written: (c) => written[c.index]!,
      wrote: (c, bytes) => {
        h?.wrote(c.start + written[c.index]!, bytes);
        written[c.index]! += bytes.length;
        o.progress.received(o.file.path, bytes.length);
        flushed(bytes.length);
        void h?.catchUp();
      },
    };
    let recording = Promise.resolve();
    const record = (): Promise<void> => (recording = recording.then(async () => {
      const tmp = `${o.partsPath}.tmp`;
      await writeFile(tmp, JSON.stringify({ size: o.file.size, ...plan, done: [...done].sort((a, b) => a - b) }));
      await rename(tmp, o.partsPath);
    }));

    void hasher?.catchUp();
    await Promise.all(chunks.filter((c) => !done.has(c.index)).map((c) => o.requests.use(o.file.path, async () => {
      await fetchChunk(o, fh, c, chunks.length === 1, sink);
      done.add(c.index);
      await Promise.all([record(), hasher?.catchUp()]);
    })));
    await recording;
    const lastByte = performance.now();
    // Every byte is written: the flush to disk runs while the hash catches up with the last chunks,
    // instead of after it (a file that then fails verification is deleted all the same).
    let syncedAt = lastByte;
    const synced = o.fsync ? fh.datasync().then(() => void (syncedAt = performance.now())) : Promise.resolve();
    synced.catch(() => {}); // awaited below; not unhandled if verification throws first
    let hashedAt = lastByte;
    if (verifier && hasher) {
      const result = await hasher.finish();
      hashedAt = performance.now();
      hasher = undefined;
      const actual = result.hashedBytes === o.file.size ? result.digest : `(only ${result.hashedBytes} bytes readable)`;
      if (actual !== verifier.expected) {
        await synced.catch(() => {});
        await fh.close();
        await removeTemp(o);
        throw new DownloadError('VerificationFailed', `${o.file.path}: ${verifier.name} mismatch (expected ${verifier.expected}, got ${actual})`, true);
      }
    }
    await synced;
    return { hashAfterLastByteMs: hashedAt - lastByte, syncAfterLastByteMs: syncedAt - lastByte };
  } finally {
    await hasher?.abort();
    await fh.close().catch(() => {});
  }
}

/** Where a chunk's bytes go once written: the hash, the progress and the chunk's count of bytes on disk. */
interface ChunkSink {
  written(c: Chunk): number;
  /** `bytes` were written at the chunk's end. */
  wrote(c: Chunk, bytes: Buffer): void;
}

/** One chunk with retries; a retry after a cut resumes at the byte reached. */
async function fetchChunk(o: FetchFileOptions, fh: FileHandle, c: Chunk, whole: boolean, sink: ChunkSink): Promise<void> {
  const what = `${o.file.path} [${c.start}-${c.start + c.length - 1}]`;
  await o.http.withRetry(what, async (progressed) => {
    const from = c.start + sink.written(c);
    const end = c.start + c.length - 1;
    const ranged = !(whole && from === 0);
    const writer = new ChunkWriter(fh, from, (_pos, bytes) => {
      sink.wrote(c, bytes);
      progressed();
    });
    const expected = end - from + 1;
    const receiver: BodyReceiver = {
      start: (status, headers, controller) => {
        if (ranged && status !== 206) throw new DownloadError('HttpError', `${o.file.path}: the server ignored the Range header (HTTP ${status})`);
        const contentRange = headers['content-range'];
        if (ranged && typeof contentRange === 'string' && !contentRange.startsWith(`bytes ${from}-`)) {
          throw new RetryableStatus(status, undefined, `unexpected Content-Range ${contentRange} for bytes=${from}-${end}`);
        }
        writer.attach(controller);
      },
      space: () => {
        const space = writer.space();
        // Never more than asked for: a longer body fails in `filled` at the first byte beyond.
        return space.length > expected - writer.received + 1 ? space.subarray(0, expected - writer.received + 1) : space;
      },
      filled: (n) => {
        if (writer.received + n > expected) writer.fail(new DownloadError('HttpError', `${what}: the server sent more bytes than asked for`));
        else writer.filled(n);
      },
      end: () => writer.end(),
    };
    let answer: Received;
    try {
      answer = await o.http.receive(o.url, ranged ? { range: `bytes=${from}-${end}` } : {}, receiver);
    } finally {
      // What arrived before a cut is kept: the retry asks only for the rest.
      await writer.finish().catch((e: unknown) => diskFull(e, o));
    }
    if (answer.text !== undefined || (answer.statusCode !== 200 && answer.statusCode !== 206)) throw failureOf(answer, o.file.path, !!o.http.options.token);
    const got = sink.written(c);
    if (got < c.length) throw new DownloadError('NetworkError', `${what}: the body ended after ${got - (from - c.start)} of ${c.length - (from - c.start)} bytes`, true);
  });
}
