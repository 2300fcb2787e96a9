#!/usr/bin/env node
// Download throughput on loopback against the Hub-protocol test server (tools/hub-server, its own
// process): `jamba-runtime download` vs curl (one file after another, and --parallel) vs
// huggingface_hub's snapshot_download, on the same synthetic safetensors, runs interleaved. Ours is
// the only one of those that verifies what it wrote, so one more row gives curl the same guarantee:
// curl --parallel, then `openssl dgst -sha256` (SHA-NI, unlike coreutils' sha256sum) of every file at once.
// Ours is also the only one that puts its files on disk before it ends (fsync, so that its completion
// marker never outlives a crash); another row gives curl that: curl --parallel, then `sync FILE...`;
// and one gives curl both, one after the other. Ours with --no-fsync (verified, not flushed: how a pod
// downloads into its own emptyDir) is measured against curl then openssl, the same guarantee.
//   node dist/tools/bench/download-bench.js [--gib 1] [--files 4] [--runs 5] [--python /path/to/venv/bin/python] [--port P] [--ours NAME=VALUE,... ...]
// --ours main=PATH,...: that row runs another build's dist/runtime/cmd/main.js (before and after in one run).
// --port P: the Hub server listens on P and its CDN origin on P+1 (default: ports the system picks).
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { repoRoot } from './runtime-process.js';

const { values } = parseArgs({
  options: {
    gib: { type: 'string' }, files: { type: 'string' }, runs: { type: 'string' }, python: { type: 'string' }, work: { type: 'string' }, port: { type: 'string' },
    // More rows of ours with other settings, each one `jamba-runtime download` options as NAME=VALUE pairs ("connections=4,chunk-size=8"; main=PATH: another build).
    ours: { type: 'string', multiple: true },
  },
});
const totalBytes = Math.round(Number(values.gib ?? '1') * 1024 ** 3);
const fileCount = Number(values.files ?? '4');
const runs = Number(values.runs ?? '5');
const work = values.work ?? path.join(tmpdir(), 'jamba-download-bench');
const REPO = 'bench/jamba-synthetic';

/** Random bytes (incompressible), written once and reused across runs of the benchmark. */
async function syntheticRepo(dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const per = Math.floor(totalBytes / fileCount);
  const names = Array.from({ length: fileCount }, (_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(fileCount).padStart(5, '0')}.safetensors`);
  for (const name of names) {
    const file = path.join(dir, name);
    if ((await stat(file).catch(() => undefined))?.size === per) continue;
    const fh = await open(file, 'w');
    for (let off = 0; off < per; off += 16 << 20) await fh.write(randomBytes(Math.min(16 << 20, per - off)));
    await fh.close();
  }
  await writeFile(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'jamba', note: 'synthetic weights for the download benchmark' }));
  return names;
}

/** Runs a command to completion; its standard output. */
function exec(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${cmd} exited ${code}: ${stderr.slice(-2000)}`))));
  });
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

const runCommand = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<number> => timed(() => exec(cmd, args, env));

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const b of createReadStream(file, { highWaterMark: 4 << 20 })) hash.update(b as Buffer);
  return hash.digest('hex');
}

async function bytesUnder(dir: string, names: string[]): Promise<number> {
  let n = 0;
  for (const name of names) n += (await stat(path.join(dir, name)).catch(() => ({ size: 0 }))).size;
  return n;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

const dataDir = path.join(work, 'repo');
const names = await syntheticRepo(dataDir);
const weightBytes = await bytesUnder(dataDir, names);
const expectedSha256 = await Promise.all(names.map((n) => sha256Of(path.join(dataDir, n))));
const ports = values.port ? ['--port', values.port, '--cdn-port', String(Number(values.port) + 1)] : [];
const server = spawn(process.execPath, [path.join(repoRoot, 'dist/tools/hub-server/main.js'), '--repo', `${REPO}=${dataDir}`, ...ports], { stdio: ['ignore', 'pipe', 'inherit'] });
const { endpoint } = await new Promise<{ endpoint: string }>((resolve) => createInterface({ input: server.stdout! }).once('line', (l) => resolve(JSON.parse(l))));
const resolveUrl = (name: string) => `${endpoint}/${REPO}/resolve/main/${name}`;
const runtimeMain = path.join(repoRoot, 'dist/runtime/cmd/main.js');

const curlParallel = (dir: string): string[] => ['-sS', '-L', '--fail', '--parallel', '--parallel-max', String(fileCount), ...names.flatMap((n) => ['-o', path.join(dir, n), resolveUrl(n)])];

/** Every file's sha256 at once, checked against the repository's: what ours guarantees. */
async function verifyDigests(dir: string): Promise<void> {
  const digests = await Promise.all(names.map((n) => exec('openssl', ['dgst', '-sha256', '-r', path.join(dir, n)])));
  digests.forEach((d, i) => {
    if (d.split(' ')[0] !== expectedSha256[i]) throw new Error(`curl then openssl: ${names[i]} has sha256 ${d.split(' ')[0]}, expected ${expectedSha256[i]}`);
  });
}

/** Puts the files on disk before it returns, as ours does before it writes its completion marker. */
const syncFiles = (dir: string) => exec('sync', names.map((n) => path.join(dir, n)));

/** curl --parallel, then the guarantees ours gives that curl does not, one after another. */
const curlThen = (...after: ((dir: string) => Promise<unknown>)[]) => (dir: string) => timed(async () => {
  await exec('curl', curlParallel(dir));
  for (const step of after) await step(dir);
});

type Client = { name: string; run: (dir: string) => Promise<number> };
/**
 * A row of ours: `jamba-runtime download` options as NAME=VALUE pairs or a bare NAME (a switch: no-fsync),
 * and `main=PATH` for another build's dist/runtime/cmd/main.js (a before/after pair in one run).
 */
const ours = (settings: string): Client => {
  let main = runtimeMain;
  const flags = settings.split(/[,\s]+/).filter(Boolean).flatMap((pair) => {
    const eq = pair.indexOf('=');
    if (eq < 0 && /^[a-z][a-z-]*$/.test(pair)) return [`--${pair}`];
    if (eq < 1) throw new Error(`--ours takes NAME=VALUE pairs or switches (connections=4,chunk-size=8,no-fsync, main=PATH), not '${pair}'`);
    if (pair.slice(0, eq) === 'main') {
      main = path.resolve(pair.slice(eq + 1));
      return [];
    }
    return [`--${pair.slice(0, eq)}`, pair.slice(eq + 1)];
  });
  return {
    name: `jamba-runtime download${main === runtimeMain ? '' : ` (${path.relative(process.cwd(), main)})`}${flags.length ? ` ${flags.join(' ')}` : ''}`,
    run: (dir) => runCommand(process.execPath, [main, 'download', '--repo', REPO, '--dir', dir, '--include', '*.safetensors', ...flags], { HF_ENDPOINT: endpoint }),
  };
};
const clients: Client[] = [
  ours(''),
  // Verified but not flushed (the emptyDir case): the same guarantee as curl then openssl.
  ours('no-fsync'),
  ...(values.ours ?? []).map(ours),
  { name: 'curl, one file after another', run: (dir) => runCommand('curl', ['-sS', '-L', '--fail', ...names.flatMap((n) => ['-o', path.join(dir, n), resolveUrl(n)])]) },
  { name: `curl --parallel (${fileCount} at once)`, run: (dir) => runCommand('curl', curlParallel(dir)) },
  { name: `curl --parallel, then openssl dgst -sha256 of the ${fileCount} files at once (verified)`, run: curlThen(verifyDigests) },
  { name: 'curl --parallel, then sync of its files (on disk)', run: curlThen(syncFiles) },
  { name: 'curl --parallel, then openssl, then sync (verified and on disk, as ours)', run: curlThen(verifyDigests, syncFiles) },
];
if (values.python) {
  const script = 'import sys; from huggingface_hub import snapshot_download; snapshot_download(sys.argv[1], local_dir=sys.argv[2], allow_patterns=["*.safetensors"], max_workers=8)';
  clients.push({
    name: 'huggingface_hub snapshot_download (max_workers 8)',
    run: (dir) => runCommand(values.python!, ['-c', script, REPO, dir], {
      HF_ENDPOINT: endpoint, HF_HOME: path.join(work, 'hf-home'), HF_HUB_DISABLE_TELEMETRY: '1', HF_HUB_DISABLE_PROGRESS_BARS: '1', HF_HUB_ENABLE_HF_TRANSFER: '0',
    }),
  });
}

/** `items` in an order of their own for round `round` (Fisher–Yates over a small LCG: the same every run of the benchmark). */
function shuffled<T>(items: T[], round: number): T[] {
  const out = [...items];
  let state = (round + 1) * 2654435761 % 2 ** 32;
  for (let i = out.length - 1; i > 0; i--) {
    state = (state * 1664525 + 1013904223) % 2 ** 32;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const seconds = new Map<string, number[]>(clients.map((c) => [c.name, []]));
const load = [loadavg()[0]!];
try {
  for (let r = 0; r < runs; r++) {
    // Each round in its own order, so no client always follows the same one: on the 2-core VM whichever
    // client followed curl-then-openssl was ~0.5 s slower, whatever its code (what a run leaves behind,
    // dirty pages or memory freed by deleting its files, falls on the next). The previous run's deletion is
    // flushed before the next starts.
    for (const c of shuffled(clients, r)) {
      const dir = path.join(work, 'out');
      await rm(dir, { recursive: true, force: true });
      await exec('sync', []);
      await mkdir(dir, { recursive: true });
      const s = await c.run(dir);
      const got = await bytesUnder(dir, names);
      if (got !== weightBytes) throw new Error(`${c.name}: ${got} of ${weightBytes} bytes on disk (files: ${(await readdir(dir)).join(', ')})`);
      seconds.get(c.name)!.push(s);
      process.stderr.write(`run ${r + 1} ${c.name}: ${s.toFixed(2)} s\n`);
    }
    load.push(loadavg()[0]!);
  }
} finally {
  server.kill('SIGTERM');
  await rm(path.join(work, 'out'), { recursive: true, force: true });
}

process.stdout.write(`${(weightBytes / 1024 ** 3).toFixed(2)} GiB in ${fileCount} safetensors files, ${runs} runs each (interleaved), load average ${load.map((l) => l.toFixed(1)).join(' → ')}\n\n`);
process.stdout.write('| client | median s | median GiB/s | runs (s) |\n|---|---|---|---|\n');
for (const c of clients) {
  const xs = seconds.get(c.name)!;
  const m = median(xs);
  process.stdout.write(`| ${c.name} | ${m.toFixed(2)} | ${(weightBytes / 1024 ** 3 / m).toFixed(2)} | ${xs.map((x) => x.toFixed(2)).join(', ')} |\n`);
}
