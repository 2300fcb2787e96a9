// The real `jamba-runtime serve` CLI in a child process on loopback, for benchmarks that must see it
// crash (the process exits) and read its memory from outside (its own /metrics).
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export interface RuntimeProcess {
  child: ChildProcess;
  url: string;
  host: string;
  port: number;
  /** Set once the process has exited. */
  exit?: { code: number | null; signal: NodeJS.Signals | null };
  stop(): Promise<void>;
}

/** Starts the CLI with `args` (after `serve --host 127.0.0.1 --port 0`) and waits until /ready answers 200. */
export async function startRuntimeProcess(args: string[]): Promise<RuntimeProcess> {
  const main = path.join(repoRoot, 'dist', 'runtime', 'cmd', 'main.js');
  const child = spawn(process.execPath, [main, 'serve', '--host', '127.0.0.1', '--port', '0', ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  const rp = { child } as RuntimeProcess;
  const exited = new Promise<void>((resolve) => child.on('exit', (code, signal) => {
    rp.exit = { code, signal };
    resolve();
  }));
  rp.stop = async () => {
    if (!rp.exit) child.kill('SIGTERM');
    await exited;
  };
  rp.url = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      for (const line of buffer.split('\n').slice(0, -1)) {
        try {
          const j = JSON.parse(line) as { msg?: string; url?: string };
          if (j.msg === 'listening' && j.url) resolve(j.url);
        } catch {
          // not a JSON line
        }
      }
      buffer = buffer.slice(buffer.lastIndexOf('\n') + 1);
    });
    child.on('exit', () => reject(new Error('jamba-runtime exited before listening')));
  });
  const u = new URL(rp.url);
  rp.host = u.hostname;
  rp.port = Number(u.port);
  const deadline = Date.now() + 120_000;
  while ((await fetch(`${rp.url}/ready`).then((r) => r.status, () => 0)) !== 200) {
    if (rp.exit || Date.now() > deadline) throw new Error('jamba-runtime did not become ready');
    await new Promise((r) => setTimeout(r, 200));
  }
  return rp;
}

/** /metrics as metric name → value, summed over label sets. */
export async function scrapeMetrics(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (m) out.set(m[1]!, (out.get(m[1]!) ?? 0) + Number(m[2]));
  }
  return out;
}

export interface MemorySample {
  heapUsedMiB: number;
  rssMiB: number;
  kvCacheUsage: number;
  stateSlotsInUse: number;
  running: number;
  waiting: number;
}

const MIB = 2 ** 20;

/** What the runtime reports of its memory and engine state (prom-client's process and Node metrics, ours). */
export async function memorySample(url: string): Promise<MemorySample> {
  const m = await scrapeMetrics(url);
  const get = (name: string) => m.get(name) ?? Number.NaN;
  return {
    heapUsedMiB: get('nodejs_heap_size_used_bytes') / MIB,
    rssMiB: get('process_resident_memory_bytes') / MIB,
    kvCacheUsage: get('jamba_kv_cache_usage_ratio'),
    stateSlotsInUse: get('jamba_mamba_state_slots_in_use'),
    running: get('jamba_requests_running'),
    waiting: get('jamba_requests_waiting'),
  };
}
