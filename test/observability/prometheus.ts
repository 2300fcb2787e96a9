// A real Prometheus (built from github.com/prometheus/prometheus into .tools/bin) on a loopback port,
// with its TSDB in a temporary directory, and its HTTP API.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { toolPath } from '../harness/exec.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface QueryResult {
  metric: Record<string, string>;
  value?: [number, string];
  values?: Array<[number, string]>;
}

export class Prometheus {
  readonly log: string[] = [];
  private constructor(private readonly child: ChildProcess, readonly url: string, readonly dir: string) {}

  /** Starts Prometheus with `config` (and rules files written beside it). */
  static async start(config: Record<string, unknown>, files: Record<string, string> = {}): Promise<Prometheus> {
    const bin = toolPath('prometheus');
    if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`make tools\` (\`make test\` does)`);
    const dir = mkdtempSync(path.join(tmpdir(), 'jamba-prometheus-'));
    for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
    writeFileSync(path.join(dir, 'prometheus.yml'), stringify(config));
    const port = await freePort();
    const child = spawn(bin, [
      `--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
    ], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const p = new Prometheus(child, `http://127.0.0.1:${port}`, dir);
    const keep = (b: Buffer) => p.log.push(...b.toString('utf8').split('\n').filter(Boolean));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${p.log.slice(-10).join('\n')}`);
      try {
        if ((await fetch(`${p.url}/-/ready`)).ok) return p;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`prometheus not ready after 30 s: ${p.log.slice(-10).join('\n')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async api<T>(pathAndQuery: string): Promise<T> {
    const res = await fetch(`${this.url}/api/v1/${pathAndQuery}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${pathAndQuery}: ${body.error}`);
    return body.data;
  }

  /** Instant query at `time` (seconds; now when omitted). */
  async query(expr: string, time?: number): Promise<QueryResult[]> {
    const t = time !== undefined ? `&time=${time}` : '';
    return (await this.api<{ result: QueryResult[] }>(`query?query=${encodeURIComponent(expr)}${t}`)).result;
  }

  async queryRange(expr: string, start: number, end: number, step: number): Promise<QueryResult[]> {
    return (await this.api<{ result: QueryResult[] }>(`query_range?query=${encodeURIComponent(expr)}&start=${start}&end=${end}&step=${step}`)).result;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
