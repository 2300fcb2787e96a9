// Fetches one file into a temporary name: ranged requests in parallel (chunks), each written at its
// offset as it streams in (nothing held whole in memory), a record of finished chunks beside it so a
// restarted process resumes, and the hash computed over the finished prefix while later chunks are
// still arriving. The caller renames the file once `fetchFile` returns (verified).
import { createHash, type Hash } from 'node:crypto';
import { open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { DownloadError, formatBytes } from './errors.js';
import { failure, RetryableStatus, type HubHttp } from './http.js';
import type { RepoFile } from './hub-api.js';
import type { DownloadProgress } from './progress.js';

/** Bounds concurrent requests across all files. */
export class Semaphore {
  private waiters: (() => void)[] = [];
  constructor(private free: number) {}

  async use<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiters.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.waiters.shift();
      if (next) next();
      else this.free++;
    }
  }
}

/** The hash the Hub publishes for a file: sha256 for LFS files, the git blob id (sha1) for the rest. */
function expectedHash(file: RepoFile): { hash: Hash; expected: string; name: string } | undefined {
  if (file.sha256) return { hash: createHash('sha256'), expected: file.sha256, name: 'sha256' };
  if (file.blobId) return { hash: createHash('sha1').update(`blob ${file.size}\0`), expected: file.blobId, name: 'git blob id' };
  return undefined;
}

export interface FetchFileOptions {
  http: HubHttp;
  url: string;
  file: RepoFile;
  tmpPath: string;
  /** JSON list of finished chunk indices, for resuming. */
  partsPath: string;
  chunkBytes: number;
  requests: Semaphore;
  progress: DownloadProgress;
}

interface Chunk {
  index: number;
  start: number;
  length: number;
}

function chunksOf(size: number, chunkBytes: number): Chunk[] {
  const out: Chunk[] = [];
  for (let start = 0, index = 0; start < size; start += chunkBytes, index++) out.push({ index, start, length: Math.min(chunkBytes, size - start) });
  return out;
}

/** Finished chunks recorded by an earlier run, if its temporary file is still there at full size. */
async function resumableParts(o: FetchFileOptions, chunks: number): Promise<Set<number>> {
  try {
    const [st, parts] = await Promise.all([stat(o.tmpPath), readFile(o.partsPath, 'utf8')]);
    const record = JSON.parse(parts) as { size?: number; chunkBytes?: number; done?: number[] };
    if (st.size !== o.file.size || record.size !== o.file.size || record.chunkBytes !== o.chunkBytes) return new Set();
    return new Set((record.done ?? []).filter((i) => Number.isInteger(i) && i >= 0 && i < chunks));
  } catch {
    return new Set();
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

/** Downloads and verifies `o.file` into `o.tmpPath`. Throws VerificationFailed (temp files removed) on a hash mismatch. */
export async function fetchFile(o: FetchFileOptions): Promise<void> {
  const chunks = chunksOf(o.file.size, o.chunkBytes);
  const done = await resumableParts(o, chunks.length);
  let fh: FileHandle;
  if (done.size > 0) fh = await open(o.tmpPath, 'r+');
  else {
    fh = await open(o.tmpPath, 'w+').catch((e) => diskFull(e, o));
    await fh.truncate(o.file.size).catch((e) => diskFull(e, o));
  }
  try {
    for (const i of done) o.progress.resumedFrom(o.file.path, chunks[i]!.length);
    const verifier = expectedHash(o.file);
    let hashed = 0; // chunks hashed, in order
    let hashing = Promise.resolve();
    // Hash the finished prefix while later chunks still stream in (page cache: no second network read).
    const pump = (): Promise<void> => (hashing = hashing.then(async () => {
      if (!verifier) return;
      const buf = Buffer.allocUnsafe(Math.min(o.chunkBytes, 4 << 20));
      while (hashed < chunks.length && done.has(hashed)) {
        const c = chunks[hashed]!;
        for (let off = 0; off < c.length;) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, c.length - off), c.start + off);
          if (bytesRead === 0) throw new DownloadError('VerificationFailed', `${o.file.path}: shorter on disk than expected`);
          verifier.hash.update(buf.subarray(0, bytesRead));
          off += bytesRead;
        }
        hashed++;
      }
    }));
    let recording = Promise.resolve();
    const record = (): Promise<void> => (recording = recording.then(async () => {
      const tmp = `${o.partsPath}.tmp`;
      await writeFile(tmp, JSON.stringify({ size: o.file.size, chunkBytes: o.chunkBytes, done: [...done].sort((a, b) => a - b) }));
      await rename(tmp, o.partsPath);
    }));

    void pump();
    await Promise.all(chunks.filter((c) => !done.has(c.index)).map((c) => o.requests.use(async () => {
      await fetchChunk(o, fh, c, chunks.length === 1);
      done.add(c.index);
      await Promise.all([record(), pump()]);
    })));
    await pump();
    await recording;
    if (verifier) {
      const actual = verifier.hash.digest('hex');
      if (actual !== verifier.expected) {
        await fh.close();
        await removeTemp(o);
        throw new DownloadError('VerificationFailed', `${o.file.path}: ${verifier.name} mismatch (expected ${verifier.expected}, got ${actual})`, true);
      }
    }
    await fh.datasync();
  } finally {
    await fh.close().catch(() => {});
  }
}

/** One chunk with retries; a retry after a cut resumes at the byte reached. */
async function fetchChunk(o: FetchFileOptions, fh: FileHandle, c: Chunk, whole: boolean): Promise<void> {
  let written = 0;
  const what = `${o.file.path} [${c.start}-${c.start + c.length - 1}]`;
  await o.http.withRetry(what, async (progressed) => {
    const from = c.start + written;
    const end = c.start + c.length - 1;
    const ranged = !(whole && written === 0);
    const res = await o.http.once(o.url, ranged ? { range: `bytes=${from}-${end}` } : {});
    if (res.statusCode !== 200 && res.statusCode !== 206) throw await failure(res, o.file.path, !!o.http.options.token);
    if (ranged && res.statusCode !== 206) {
      await res.body.dump();
      throw new DownloadError('HttpError', `${o.file.path}: the server ignored the Range header (HTTP ${res.statusCode})`);
    }
    const contentRange = res.headers['content-range'];
    if (ranged && typeof contentRange === 'string' && !contentRange.startsWith(`bytes ${from}-`)) {
      await res.body.dump();
      throw new RetryableStatus(res.statusCode, undefined, `unexpected Content-Range ${contentRange} for bytes=${from}-${end}`);
    }
    for await (const data of res.body as AsyncIterable<Buffer>) {
      if (written + data.length > c.length) {
        res.body.destroy();
        throw new DownloadError('HttpError', `${what}: the server sent more bytes than asked for`);
      }
      await fh.write(data, 0, data.length, c.start + written).catch((e) => diskFull(e, o));
      written += data.length;
      o.progress.received(o.file.path, data.length);
      progressed();
    }
    if (written < c.length) throw new DownloadError('NetworkError', `${what}: the body ended after ${written} of ${c.length} bytes`, true);
  });
}
