// The Hub downloader against the Hub-protocol test server (tools/hub-server) on loopback: the fixture
// checkpoints with their real sha256 and git blob ids, LFS files redirected to a second "CDN" origin,
// Range requests, and injected faults.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { download, MARKER_FILE, STATE_DIR, type DownloadOptions } from '../../runtime/download/download.js';
import { DownloadError } from '../../runtime/download/errors.js';
import { DownloadProgress, type ProgressSnapshot } from '../../runtime/download/progress.js';
import { startHubServer, type HubServer } from '../../tools/hub-server/hub-server.js';
import { fixtureDir } from './helpers.js';

const TINY = 'ai21labs/jamba-tiny';
const SHARDED = 'ai21labs/jamba-tiny-unusual';
const GATED = 'ai21labs/jamba-tiny-gated';
/** Weights large enough (20 MiB) to be hashed on a worker thread. */
const LARGE = 'bench/large-shard';
const TOKEN = 'hf_test_token';
const FAST_RETRY = { attempts: 6, baseDelayMs: 20, maxDelayMs: 200, maxRetryAfterMs: 5_000 };

let hub: HubServer;
let work: string;
let n = 0;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jamba-download-test-'));
  const largeDir = path.join(work, 'large-repo');
  await mkdir(largeDir);
  await writeFile(path.join(largeDir, 'config.json'), '{"model_type":"jamba"}');
  await writeFile(path.join(largeDir, 'model.safetensors'), randomBytes(20 * 1024 * 1024 + 12345));
  hub = await startHubServer([
    { id: LARGE, dir: largeDir },
    { id: TINY, dir: fixtureDir('jamba-tiny'), refs: ['main', 'v1.0'] },
    { id: SHARDED, dir: fixtureDir('jamba-tiny-unusual') },
    { id: GATED, dir: fixtureDir('jamba-tiny'), gatedToken: TOKEN },
  ]);
});

afterAll(async () => {
  await hub.close();
  await rm(work, { recursive: true, force: true });
});

beforeEach(() => {
  hub.requests.length = 0;
});

afterEach(() => {
  // Every fault a test injected was met (the test exercised what it says).
  const pending = hub.pendingFaults();
  hub.clearFaults();
  expect(pending).toEqual([]);
});

function newDir(): string {
  return path.join(work, `d${n++}`);
}

function options(repo: string, dir: string, extra: Partial<DownloadOptions> = {}): DownloadOptions {
  return { repo, revision: 'main', dir, endpoint: hub.endpoint, retry: FAST_RETRY, idleTimeoutMs: 10_000, ...extra };
}

/** The downloaded files equal the repository's, byte for byte. */
async function expectSameFiles(dir: string, repo: string, names?: string[]): Promise<void> {
  const files = hub.repo(repo).files.filter((f) => !names || names.includes(f.rfilename));
  expect(files.length).toBeGreaterThan(0);
  for (const f of files) {
    const [got, want] = await Promise.all([readFile(path.join(dir, f.rfilename)), readFile(f.absPath)]);
    expect(got.equals(want)).toBe(true);
  }
}

/** Polls the progress while `run` goes on; every snapshot taken, in order. */
async function watched<T>(progress: DownloadProgress, run: () => Promise<T>): Promise<{ result: T; snapshots: ProgressSnapshot[] }> {
  const snapshots: ProgressSnapshot[] = [progress.snapshot()];
  const timer = setInterval(() => snapshots.push(progress.snapshot()), 2);
  try {
    const result = await run();
    return { result, snapshots };
  } finally {
    clearInterval(timer);
    snapshots.push(progress.snapshot());
  }
}

function cdnRanges(file: string): string[] {
  const sha = hub.repo(TINY).files.find((f) => f.rfilename === file)!.sha256;
  return hub.requests.filter((r) => r.origin === 'cdn' && r.path.includes(sha) && r.range).map((r) => r.range!);
}

describe('downloading a revision', () => {
  test('fetches the serving files, LFS through the CDN origin with ranged requests, verifies them and marks the revision complete', async () => {
    const dir = newDir();
    const result = await download(options(TINY, dir, { chunkBytes: 256 * 1024 }));
    expect(result.alreadyComplete).toBe(false);
    await expectSameFiles(dir, TINY);
    const listed = hub.repo(TINY).files.map((f) => f.rfilename).sort();
    expect(result.marker.files.map((f) => f.path).sort()).toEqual(listed);
    expect(result.marker).toMatchObject({ repo: TINY, revision: 'main', commit: hub.repo(TINY).commit });
    expect(JSON.parse(await readFile(path.join(dir, MARKER_FILE), 'utf8'))).toEqual(result.marker);
    // Nothing temporary is left.
    expect((await readdir(dir)).filter((f) => f.startsWith('.'))).toEqual([MARKER_FILE]);
    // The CDN is another host, as the Hub's is (huggingface_hub follows a redirect to the same host name).
    expect(new URL(hub.cdnUrl).hostname).not.toBe(new URL(hub.endpoint).hostname);
    // The 1.9 MB safetensors came from the CDN in ranges of at most 256 KiB that tile it exactly (the
    // first ones shorter: the ramp that staggers their ends); small files straight from the Hub.
    const ranges = cdnRanges('model.safetensors').map((r) => /^bytes=(\d+)-(\d+)$/.exec(r)!.slice(1).map(Number) as [number, number]).sort((x, y) => x[0] - y[0]);
    expect(ranges.length).toBeGreaterThanOrEqual(Math.ceil(1991640 / (256 * 1024)));
    expect(ranges.every(([from, to], i) => to - from + 1 <= 256 * 1024 && from === (i ? ranges[i - 1]![1] + 1 : 0))).toBe(true);
    expect(ranges.at(-1)![1]).toBe(1991640 - 1);
    expect(ranges[1]![1] - ranges[1]![0]).toBeGreaterThan(ranges[0]![1] - ranges[0]![0]);
    expect(hub.requests.filter((r) => r.origin === 'hub' && r.path.includes('/resolve/') && r.status === 200).length).toBe(listed.length - 1);
    // Every file is fetched at the commit the revision resolved to.
    expect(hub.requests.filter((r) => r.path.includes('/resolve/')).every((r) => r.path.includes(`/resolve/${hub.repo(TINY).commit}/`))).toBe(true);
    expect(result.bytesFetched).toBe(result.marker.bytes);
  });

  test('a second download of the same revision is a no-op: no request at all', async () => {
    const dir = newDir();
    await download(options(SHARDED, dir));
    hub.requests.length = 0;
    const again = await download(options(SHARDED, dir));
    expect(again.alreadyComplete).toBe(true);
    expect(again.bytesFetched).toBe(0);
    expect(hub.requests).toEqual([]);
    // Another revision name is not the same download.
    hub.requests.length = 0;
    await expect(download(options(SHARDED, dir, { revision: 'v9' }))).rejects.toMatchObject({ code: 'RevisionNotFound' });
    // ... and a file deleted from the directory invalidates the marker.
    await rm(path.join(dir, 'model-00002-of-00003.safetensors'));
    const repaired = await download(options(SHARDED, dir));
    expect(repaired.alreadyComplete).toBe(false);
    expect(repaired.bytesFetched).toBe(397380);
    await expectSameFiles(dir, SHARDED);
  });

  test('parallel and sequential downloads produce identical files', async () => {
    const parallel = newDir();
    const sequential = newDir();
    await download(options(SHARDED, parallel, { chunkBytes: 64 * 1024, connections: 8, filesAtOnce: 3 }));
    const parallelRanges = hub.requests.filter((r) => r.origin === 'cdn' && r.range).length;
    hub.requests.length = 0;
    await download(options(SHARDED, sequential, { chunkBytes: 64 * 1024 * 1024, connections: 1, filesAtOnce: 1 }));
    expect(parallelRanges).toBeGreaterThanOrEqual(3 + 6 + 6);
    expect(hub.requests.filter((r) => r.origin === 'cdn' && r.range).length).toBe(0);
    for (const f of hub.repo(SHARDED).files) {
      const [a, b] = await Promise.all([readFile(path.join(parallel, f.rfilename)), readFile(path.join(sequential, f.rfilename))]);
      expect(a.equals(b)).toBe(true);
    }
    await expectSameFiles(parallel, SHARDED);
  });

  test('a large file (hashed on a worker thread) in parallel ranges; a corrupted byte in it is caught there too', async () => {
    const dir = newDir();
    await download(options(LARGE, dir, { chunkBytes: 3 * 1024 * 1024, connections: 6 }));
    await expectSameFiles(dir, LARGE);
    hub.inject({ origin: 'cdn', kind: 'corrupt', offset: 15 * 1024 * 1024 + 7 });
    const retried: string[] = [];
    const again = newDir();
    await download(options(LARGE, again, { chunkBytes: 3 * 1024 * 1024, connections: 6, onRetry: (r) => retried.push(r.reason) }));
    expect(retried).toEqual([expect.stringMatching(/model\.safetensors: sha256 mismatch/)]);
    await expectSameFiles(again, LARGE);
  });

  test('filters: only the files asked for', async () => {
    const dir = newDir();
    const r = await download(options(TINY, dir, { include: ['config.json', 'tokenizer*'], exclude: ['tokenizer_config.json'] }));
    expect(r.marker.files.map((f) => f.path).sort()).toEqual(['config.json', 'tokenizer.json']);
    expect((await readdir(dir)).sort()).toEqual([MARKER_FILE, 'config.json', 'tokenizer.json']);
  });
});

describe('interruptions and faults', () => {
  test('resumes an interrupted download from the chunks on disk, and the result is identical', async () => {
    const dir = newDir();
    const chunkBytes = 128 * 1024;
    // The 6th ranged request of the weights fails for good: the first run gives up with 5 chunks on disk.
    hub.inject({ origin: 'cdn', pathIncludes: 'model.safetensors', ranged: true, kind: 'status', status: 500, skip: 5, times: 2 });
    await expect(download(options(TINY, dir, { chunkBytes, connections: 1, filesAtOnce: 1, retry: { ...FAST_RETRY, attempts: 2 } })))
      .rejects.toMatchObject({ code: 'HttpError' });
    expect(await readdir(path.join(dir, STATE_DIR))).toEqual(expect.arrayContaining([expect.stringMatching(/model\.safetensors\..*\.incomplete$/)]));
    await expect(stat(path.join(dir, MARKER_FILE))).rejects.toThrow();
    hub.requests.length = 0;

    const progress = new DownloadProgress(TINY, 'main');
    // Other settings now (range size, connections): the chunks on disk are resumed by the plan they were cut by.
    const second = await download(options(TINY, dir, { chunkBytes: 3 * chunkBytes, connections: 8, progress }));
    const s = progress.snapshot();
    expect(s.bytesResumed).toBeGreaterThanOrEqual(5 * chunkBytes);
    expect(second.bytesFetched).toBe(second.marker.bytes - s.bytesResumed);
    // The chunks on disk were not asked for again.
    const starts = cdnRanges('model.safetensors').map((r) => Number(/bytes=(\d+)-/.exec(r)![1]));
    expect(Math.min(...starts)).toBeGreaterThanOrEqual(5 * chunkBytes);
    await expectSameFiles(dir, TINY);
  });

  test('a corrupted byte is detected by the sha256 and the file fetched again; progress stays monotonic', async () => {
    const dir = newDir();
    hub.inject({ origin: 'cdn', pathIncludes: 'model.safetensors', kind: 'corrupt', offset: 1_000_000 });
    const retried: string[] = [];
    const progress = new DownloadProgress(TINY, 'main');
    const { snapshots } = await watched(progress, () =>
      download(options(TINY, dir, { chunkBytes: 4 * 1024 * 1024, progress, onRetry: (r) => retried.push(r.reason) })));
    expect(retried).toEqual([expect.stringMatching(/model\.safetensors: sha256 mismatch/)]);
    expect(hub.requests.filter((r) => r.origin === 'cdn').length).toBe(2);
    await expectSameFiles(dir, TINY);
    for (let i = 1; i < snapshots.length; i++) expect(snapshots[i]!.bytesDone).toBeGreaterThanOrEqual(snapshots[i - 1]!.bytesDone);
  });

  test('a corruption that never goes away fails with VerificationFailed after three fetches', async () => {
    hub.inject({ origin: 'cdn', pathIncludes: 'model.safetensors', kind: 'corrupt', offset: 7, times: 3 });
    const err = await download(options(TINY, newDir())).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect(err).toMatchObject({ code: 'VerificationFailed', message: expect.stringMatching(/sha256 mismatch/) });
  });

  test('a corrupted file kept in git (not LFS) is caught by its git blob id', async () => {
    hub.inject({ origin: 'hub', pathIncludes: 'tokenizer.json', kind: 'corrupt', offset: 100 });
    const dir = newDir();
    const retried: string[] = [];
    await download(options(TINY, dir, { onRetry: (r) => retried.push(r.reason) }));
    expect(retried).toEqual([expect.stringMatching(/tokenizer\.json: git blob id mismatch/)]);
    await expectSameFiles(dir, TINY);
  });

  test('429 with Retry-After is honoured, 500s and 503s are retried', async () => {
    hub.inject(
      { origin: 'hub', pathIncludes: '/api/models/', kind: 'status', status: 429, retryAfterSeconds: 1 },
      { origin: 'cdn', kind: 'status', status: 500, times: 2 },
      { origin: 'hub', pathIncludes: 'config.json', kind: 'status', status: 503 },
    );
    const dir = newDir();
    const retries: { reason: string; delayMs: number }[] = [];
    const started = Date.now();
    await download(options(TINY, dir, { onRetry: (r) => retries.push(r) }));
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(retries).toEqual(expect.arrayContaining([
      { url: expect.any(String), attempt: 1, reason: 'HTTP 429', delayMs: 1000 },
      expect.objectContaining({ reason: 'HTTP 500' }),
      expect.objectContaining({ reason: 'HTTP 503' }),
    ]));
    expect(retries.filter((r) => r.reason === 'HTTP 500').length).toBe(2);
    await expectSameFiles(dir, TINY);
  });

  test('a connection cut mid-file resumes at the byte reached', async () => {
    hub.inject({ origin: 'cdn', kind: 'cut', afterBytes: 300_000 });
    const dir = newDir();
    await download(options(TINY, dir, { chunkBytes: 64 * 1024 * 1024 }));
    const requests = hub.requests.filter((r) => r.origin === 'cdn');
    expect(requests.map((r) => r.fault)).toEqual(['cut', undefined]);
    // The retry asks only for what is missing (bytes before the cut that arrived are kept).
    const start = Number(/bytes=(\d+)-/.exec(requests[1]!.range ?? '')?.[1]);
    expect(start).toBeGreaterThan(0);
    expect(start).toBeLessThanOrEqual(300_000);
    await expectSameFiles(dir, TINY);
  });

  test('a slow origin still completes, and one that stalls is abandoned after the idle timeout and retried', async () => {
    hub.inject(
      { origin: 'cdn', pathIncludes: 'model-00001', kind: 'slow', bytesPerSecond: 2_000_000 },
      { origin: 'cdn', pathIncludes: 'model-00002', kind: 'stall', stallAfterBytes: 50_000 },
    );
    const dir = newDir();
    const retries: string[] = [];
    const started = Date.now();
    await download(options(SHARDED, dir, { idleTimeoutMs: 1000, chunkBytes: 64 * 1024 * 1024, onRetry: (r) => retries.push(r.url) }));
    expect(Date.now() - started).toBeGreaterThanOrEqual(190); // 403 kB at 2 MB/s
    expect(retries).toEqual([expect.stringMatching(/^model-00002-of-00003\.safetensors/)]);
    await expectSameFiles(dir, SHARDED);
  });

  test('progress is monotonic and ends exact: bytes, files, percent, phase', async () => {
    hub.inject({ origin: 'cdn', kind: 'slow', bytesPerSecond: 4_000_000, times: 3 });
    const progress = new DownloadProgress(SHARDED, 'main');
    const { result, snapshots } = await watched(progress, () => download(options(SHARDED, newDir(), { chunkBytes: 100_000, progress })));
    const total = result.marker.bytes;
    expect(total).toBe(hub.repo(SHARDED).files.reduce((s, f) => s + f.size, 0));
    const during = snapshots.filter((s) => s.phase === 'Downloading');
    expect(during.length).toBeGreaterThan(5);
    for (let i = 1; i < snapshots.length; i++) {
      const [a, b] = [snapshots[i - 1]!, snapshots[i]!];
      expect(b.bytesDone).toBeGreaterThanOrEqual(a.bytesDone);
      expect(b.percent).toBeGreaterThanOrEqual(a.percent);
      expect(b.filesDone).toBeGreaterThanOrEqual(a.filesDone);
      expect(b.bytesDone).toBeLessThanOrEqual(b.bytesTotal);
    }
    expect(during.some((s) => s.bytesPerSecond > 0 && s.etaSeconds !== undefined)).toBe(true);
    expect(during.every((s) => s.bytesTotal === total && s.percent < 100)).toBe(true);
    expect(snapshots.at(-1)).toMatchObject({ phase: 'Downloaded', bytesDone: total, percent: 100, filesDone: result.marker.files.length, etaSeconds: 0 });
  });
});

describe('flushed to disk, or not (--no-fsync: trusted under the boot that wrote the files)', () => {
  const boot = (id: string) => ({ bootId: async () => id });
  /** Flips one byte of a file in place: the size stays, only a hash can tell. */
  async function flipByte(file: string, at: number): Promise<void> {
    const bytes = await readFile(file);
    bytes[at] = bytes[at]! ^ 0xff;
    await writeFile(file, bytes);
  }
  const readMarkerFile = async (dir: string) => JSON.parse(await readFile(path.join(dir, MARKER_FILE), 'utf8')) as Record<string, unknown>;

  test('the marker says how the files were left: flushed, or written under a named boot', async () => {
    const flushed = newDir();
    expect((await download(options(TINY, flushed, boot('boot-a')))).marker).toMatchObject({ fsynced: true });
    expect(await readMarkerFile(flushed)).not.toHaveProperty('bootId');
    const unflushed = newDir();
    const r = await download(options(TINY, unflushed, { fsync: false, ...boot('boot-a') }));
    expect(r.marker).toMatchObject({ fsynced: false, bootId: 'boot-a' });
    expect(await readMarkerFile(unflushed)).toMatchObject({ fsynced: false, bootId: 'boot-a' });
    await expectSameFiles(unflushed, TINY);
  });

  test('under the same boot an unflushed revision is complete without reading it; under another, its files are hashed first', async () => {
    const dir = newDir();
    await download(options(SHARDED, dir, { fsync: false, ...boot('boot-a') }));
    const shard = 'model-00002-of-00003.safetensors';
    const shardSize = hub.repo(SHARDED).files.find((f) => f.rfilename === shard)!.size;
    await flipByte(path.join(dir, shard), 1000);
    hub.requests.length = 0;
    // The same boot: the page cache is what was verified, so the files are not read again (nor is the Hub asked).
    expect((await download(options(SHARDED, dir, { fsync: false, ...boot('boot-a') }))).alreadyComplete).toBe(true);
    expect(hub.requests).toEqual([]);
    // Another boot (the node crashed before write-back, say): the changed shard is found and fetched again, alone.
    const after = await download(options(SHARDED, dir, { fsync: false, ...boot('boot-b') }));
    expect(after.alreadyComplete).toBe(false);
    expect(after.bytesFetched).toBe(shardSize);
    expect(after.marker).toMatchObject({ fsynced: false, bootId: 'boot-b' });
    await expectSameFiles(dir, SHARDED);
    // Intact files under yet another boot: hashed, found whole, and the marker names this boot; the Hub is not asked.
    hub.requests.length = 0;
    const intact = await download(options(SHARDED, dir, { fsync: false, ...boot('boot-c') }));
    expect(intact).toMatchObject({ alreadyComplete: true, bytesFetched: 0 });
    expect(hub.requests).toEqual([]);
    expect(await readMarkerFile(dir)).toMatchObject({ fsynced: false, bootId: 'boot-c' });
    // A run that flushes adopts them (flushing them now): the marker then holds under any boot.
    expect((await download(options(SHARDED, dir, boot('boot-c')))).alreadyComplete).toBe(true);
    expect(await readMarkerFile(dir)).toMatchObject({ fsynced: true });
    expect(await readMarkerFile(dir)).not.toHaveProperty('bootId');
    await flipByte(path.join(dir, shard), 1000);
    expect((await download(options(SHARDED, dir, boot('boot-d')))).alreadyComplete).toBe(true);
    expect(hub.requests).toEqual([]);
  });

  test('files an interrupted unflushed run verified are hashed again by a run under another boot', async () => {
    const dir = newDir();
    // One file at a time; the third shard fails for good, so the first two are verified and in place.
    hub.inject({ origin: 'cdn', pathIncludes: 'model-00003-of-00003', kind: 'status', status: 500, times: 2 });
    await expect(download(options(SHARDED, dir, { fsync: false, filesAtOnce: 1, retry: { ...FAST_RETRY, attempts: 2 }, ...boot('boot-a') })))
      .rejects.toMatchObject({ code: 'HttpError' });
    const verified = JSON.parse(await readFile(path.join(dir, STATE_DIR, 'verified.json'), 'utf8')) as Record<string, { fsynced: boolean; bootId?: string }>;
    const kept = Object.keys(verified).filter((f) => f.endsWith('.safetensors'));
    expect(kept.length).toBeGreaterThanOrEqual(1);
    for (const f of kept) expect(verified[f]).toMatchObject({ fsynced: false, bootId: 'boot-a' });
    const changed = kept[0]!;
    await flipByte(path.join(dir, changed), 10);
    // A crash can also tear the record itself (it is not flushed): a torn one counts as empty, not as an error.
    const torn = newDir();
    await mkdir(path.join(torn, STATE_DIR), { recursive: true });
    await writeFile(path.join(torn, STATE_DIR, 'verified.json'), '{"model-00001-of-00003.safe');
    expect((await download(options(SHARDED, torn, { fsync: false, ...boot('boot-b') }))).alreadyComplete).toBe(false);
    await expectSameFiles(torn, SHARDED);
    hub.requests.length = 0;
    const r = await download(options(SHARDED, dir, { fsync: false, ...boot('boot-b') }));
    const fetched = new Set(hub.requests.filter((q) => q.path.includes('/resolve/')).map((q) => q.path.split('/').at(-1)));
    expect(fetched.has(changed)).toBe(true);
    for (const f of kept.slice(1)) expect(fetched.has(f)).toBe(false);
    expect(r.marker).toMatchObject({ fsynced: false, bootId: 'boot-b' });
    await expectSameFiles(dir, SHARDED);
  });
});

describe('errors that say what to fix', () => {
  test('repository not found', async () => {
    await expect(download(options('nobody/nothing', newDir()))).rejects.toMatchObject({ code: 'RepoNotFound', message: expect.stringMatching(/nobody\/nothing@main: repository not found.*HF_TOKEN/) });
  });

  test('revision not found', async () => {
    await expect(download(options(TINY, newDir(), { revision: 'no-such-branch' }))).rejects.toMatchObject({ code: 'RevisionNotFound', message: expect.stringMatching(/no-such-branch/) });
  });

  test('a gated repository needs a token; the token is sent to the Hub but never to the CDN', async () => {
    await expect(download(options(GATED, newDir()))).rejects.toMatchObject({ code: 'GatedRepo', message: expect.stringMatching(/gated: set HF_TOKEN/) });
    await expect(download(options(GATED, newDir(), { token: 'hf_wrong' }))).rejects.toMatchObject({ code: 'GatedRepo', message: expect.stringMatching(/token \(HF_TOKEN\) was refused/) });
    hub.requests.length = 0;
    const dir = newDir();
    await download(options(GATED, dir, { token: TOKEN }));
    expect(hub.requests.filter((r) => r.origin === 'hub').every((r) => r.authorization === `Bearer ${TOKEN}`)).toBe(true);
    expect(hub.requests.filter((r) => r.origin === 'cdn').length).toBeGreaterThan(0);
    expect(hub.requests.filter((r) => r.origin === 'cdn').every((r) => r.authorization === undefined)).toBe(true);
    await expectSameFiles(dir, GATED);
  });

  test('a volume without room refuses to start and says how much is needed (free space simulated: the disk here is not full)', async () => {
    const total = hub.repo(TINY).files.reduce((s, f) => s + f.size, 0);
    const err = await download(options(TINY, newDir(), { freeBytes: async () => 1_000_000 })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DiskFull', message: expect.stringContaining(`needs 2.0 MiB (${total} bytes) more, 976.6 KiB free`) });
    expect(hub.requests.filter((r) => r.path.includes('/resolve/'))).toEqual([]);
  });

  test('a listing without the repository fields (not a Hub) is refused', async () => {
    await expect(download(options(TINY, newDir(), { endpoint: hub.cdnUrl }))).rejects.toMatchObject({ code: 'RepoNotFound' });
  });
});

