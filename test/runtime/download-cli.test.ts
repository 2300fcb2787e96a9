// `jamba-runtime download` as a process (the built CLI, as a Job or init container runs it) against the
// Hub-protocol test server: killed mid-download and restarted, it resumes; its progress is in the logs,
// the progress file, /metrics and /progress, and its final state in the termination message.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseDownloadArgs } from '../../runtime/cmd/download.js';
import { UsageError } from '../../runtime/cmd/args.js';
import { PERMANENT_FAILURE_EXIT_CODE } from '../../runtime/download/errors.js';
import { DEFAULT_INCLUDE, globToRegExp, matchesFilter } from '../../runtime/download/filters.js';
import { backoffMs, retryAfterMs } from '../../runtime/download/http.js';
import type { ProgressSnapshot } from '../../runtime/download/progress.js';
import { startHubServer, type HubServer } from '../../tools/hub-server/hub-server.js';
import { fixtureDir, RUNTIME_MAIN } from './helpers.js';

const REPO = 'ai21labs/jamba-tiny';
let hub: HubServer;
let work: string;

beforeAll(async () => {
  hub = await startHubServer([{ id: REPO, dir: fixtureDir('jamba-tiny') }]);
  work = await mkdtemp(path.join(tmpdir(), 'jamba-download-cli-'));
});

afterAll(async () => {
  await hub.close();
  await rm(work, { recursive: true, force: true });
});

interface Cli {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  exited: Promise<number | null>;
}

function startCli(args: string[], env: NodeJS.ProcessEnv = {}, user: { uid?: number; gid?: number } = {}): Cli {
  const child = spawn(process.execPath, [RUNTIME_MAIN, 'download', ...args], {
    env: { ...process.env, HF_ENDPOINT: hub.endpoint, HF_TOKEN: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'], ...user,
  });
  const logs: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => logs.push(JSON.parse(line) as Record<string, unknown>));
  child.stderr!.resume();
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, logs, exited };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

test('killed mid-download and started again, the CLI resumes from disk; a third run does nothing', async () => {
  const dir = path.join(work, 'model');
  const progressFile = path.join(work, 'progress.json');
  const termination = path.join(work, 'termination-log');
  const args = ['--repo', REPO, '--dir', dir, '--chunk-size', '1', '--connections', '1', '--progress-interval', '1', '--progress-file', progressFile,
    '--termination-message-path', termination, '--metrics-port', '0', '--metrics-host', '127.0.0.1'];
  // ~2 MB of weights at 250 kB/s, one request at a time: the first run is killed once its first 1 MiB chunk
  // is on disk (past 1.2 MB, since the other files are 0.13 MB together), ~3 s before it would finish.
  hub.inject({ origin: 'cdn', kind: 'slow', bytesPerSecond: 250_000, times: 100 });
  const first = startCli(args);
  const endpoint = await waitFor('the progress endpoint', () => first.logs.find((l) => l['msg'] === 'progress endpoint')?.['address'] as string | undefined);
  const metricsUrl = `http://${endpoint}`;
  const during = await waitFor('progress past one chunk', async () => {
    const p = (await (await fetch(`${metricsUrl}/progress`)).json()) as ProgressSnapshot;
    return p.bytesDone > 1_200_000 ? p : undefined;
  });
  expect(during).toMatchObject({ phase: 'Downloading', repo: REPO, revision: 'main', commit: hub.repo(REPO).commit });
  const metrics = await (await fetch(`${metricsUrl}/metrics`)).text();
  expect(metrics).toMatch(/^jamba_download_bytes_total \d+$/m);
  expect(metrics).toMatch(/^jamba_download_phase\{phase="Downloading"\} 1$/m);
  first.child.kill('SIGKILL');
  await first.exited;
  // Written every second: by now (> 4 s in) it is there.
  expect(await readJson<ProgressSnapshot>(progressFile)).toMatchObject({ phase: 'Downloading', bytesTotal: during.bytesTotal });
  hub.clearFaults();
  hub.requests.length = 0;

  const second = startCli(args);
  expect(await second.exited).toBe(0);
  const done = second.logs.find((l) => l['msg'] === 'download complete')!;
  expect(done).toMatchObject({ repo: REPO, commit: hub.repo(REPO).commit });
  // Resumed: the second run fetched less than everything.
  expect(done['bytes_fetched']).toBeLessThanOrEqual((done['bytes'] as number) - 1_048_576);
  for (const f of hub.repo(REPO).files) expect((await readFile(path.join(dir, f.rfilename))).equals(await readFile(f.absPath))).toBe(true);
  const final = JSON.parse(await readFile(termination, 'utf8')) as ProgressSnapshot;
  expect(final).toMatchObject({ phase: 'Downloaded', percent: 100, bytesDone: done['bytes'], filesDone: hub.repo(REPO).files.length });
  expect(await readJson<ProgressSnapshot>(progressFile)).toMatchObject({ phase: 'Downloaded' });

  hub.requests.length = 0;
  const third = startCli(args);
  expect(await third.exited).toBe(0);
  expect(third.logs.some((l) => l['msg'] === 'already downloaded: nothing to do')).toBe(true);
  expect(hub.requests).toEqual([]);
});

test('a failure another try cannot fix exits 3 (the Job fails at once) with the reason in the log and the termination message', async () => {
  const termination = path.join(work, 'termination-missing');
  const cli = startCli(['--repo', 'nobody/nothing', '--dir', path.join(work, 'missing'), '--termination-message-path', termination]);
  expect(await cli.exited).toBe(PERMANENT_FAILURE_EXIT_CODE);
  expect(cli.logs.find((l) => l['msg'] === 'download failed')).toMatchObject({ code: 'RepoNotFound' });
  expect(JSON.parse(await readFile(termination, 'utf8'))).toMatchObject({ phase: 'Failed', error: { code: 'RepoNotFound' } });
});

test('a failure another try may fix (a file corrupted on every fetch) exits 1: the Job retries its pod', async () => {
  const weights = hub.repo(REPO).files.find((f) => f.rfilename.endsWith('.safetensors'))!;
  hub.inject({ kind: 'corrupt', pathIncludes: weights.rfilename, offset: 0, times: 100 });
  const termination = path.join(work, 'termination-corrupt');
  const cli = startCli(['--repo', REPO, '--dir', path.join(work, 'corrupt'), '--termination-message-path', termination]);
  expect(await cli.exited).toBe(1);
  hub.clearFaults();
  expect(JSON.parse(await readFile(termination, 'utf8'))).toMatchObject({ phase: 'Failed', error: { code: 'VerificationFailed' } });
});

test('a directory its user cannot write: exit 3, NotWritable, saying what to fix', async () => {
  await chmod(work, 0o755); // nobody may pass through to the directory below
  const parent = path.join(work, 'read-only');
  await mkdir(parent, { mode: 0o755 });
  await chmod(parent, 0o555);
  // As root (CI, this machine) permissions do not apply: the CLI runs as nobody (uid 65534) instead.
  const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const termination = path.join(work, 'termination-not-writable');
  const cli = startCli(['--repo', REPO, '--dir', path.join(parent, 'model'), '--termination-message-path', termination], {}, asNobody);
  expect(await cli.exited).toBe(PERMANENT_FAILURE_EXIT_CODE);
  expect(cli.logs.find((l) => l['msg'] === 'download failed')).toMatchObject({ code: 'NotWritable', error: expect.stringMatching(/cannot write to .*make the volume writable by this user/) });
});

test('arguments', () => {
  expect(parseDownloadArgs(['--repo', 'ai21labs/AI21-Jamba-1.5-Mini', '--dir', '/models/x'])).toMatchObject({
    repo: 'ai21labs/AI21-Jamba-1.5-Mini', revision: 'main', dir: '/models/x', include: DEFAULT_INCLUDE, exclude: [], chunkBytes: 32 * 1048576, fsync: true,
  });
  expect(parseDownloadArgs(['--repo', 'a/b', '--dir', 'd', '--no-fsync'])).toMatchObject({ fsync: false });
  expect(parseDownloadArgs(['--repo', 'a/b', '--dir', 'd', '--all-files', '--exclude', '*.md'])).toMatchObject({ include: ['**'], exclude: ['*.md'] });
  expect(parseDownloadArgs(['--help'])).toBe('help');
  expect(() => parseDownloadArgs(['--dir', 'd'])).toThrow(new UsageError("--repo must name a repository like org/name, got ''"));
  expect(() => parseDownloadArgs(['--repo', 'a/b'])).toThrow(/--dir DIR is required/);
  expect(() => parseDownloadArgs(['--repo', 'a/b', '--dir', 'd', '--connections', '0'])).toThrow(/--connections must be an integer >= 1/);
  expect(() => parseDownloadArgs(['--repo', 'a/b', '--dir', 'd', '--bogus'])).toThrow(UsageError);
});

test('filters, Retry-After and backoff', () => {
  const serving = ['config.json', 'model-00001-of-00002.safetensors', 'model.safetensors.index.json', 'tokenizer.json', 'tokenizer.model', 'sub/generation_config.json'];
  const skipped = ['README.md', 'pytorch_model.bin', 'images/logo.png', 'original/consolidated.pt'];
  for (const f of serving) expect(matchesFilter(f, { include: DEFAULT_INCLUDE, exclude: [] })).toBe(true);
  for (const f of skipped) expect(matchesFilter(f, { include: DEFAULT_INCLUDE, exclude: [] })).toBe(false);
  expect(matchesFilter('a/b/c.json', { include: ['a/**'], exclude: ['**/c.json'] })).toBe(false);
  expect(globToRegExp('model-?????-of-*.safetensors').test('model-00001-of-00004.safetensors')).toBe(true);
  expect(retryAfterMs('3')).toBe(3000);
  expect(retryAfterMs('Wed, 02 Dec 2026 10:00:10 GMT', Date.parse('2026-12-02T10:00:00Z'))).toBe(10_000);
  expect(retryAfterMs('soon')).toBeUndefined();
  const policy = { attempts: 5, baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 1000 };
  expect([1, 2, 3, 4, 5].map((a) => backoffMs(policy, a, () => 1))).toEqual([100, 200, 400, 800, 1000]);
  expect(backoffMs(policy, 3, () => 0)).toBe(200);
});
