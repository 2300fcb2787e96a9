// Shared by the runtime's HTTP-level tests: fixture checkpoints, an in-process server on an
// ephemeral loopback port, and small HTTP/SSE/metrics readers.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { loadModel } from '../../runtime/models/index.js';
import { silentLogger } from '../../runtime/server/log.js';
import { RUNTIME_DEFAULTS, startRuntime, type Runtime, type RuntimeOptions } from '../../runtime/server/runtime.js';

/** The committed reference checkpoints (tools/fixtures). JAMBA_FIXTURES_DIR points elsewhere for development. */
export const FIXTURES_DIR = resolve(process.env['JAMBA_FIXTURES_DIR'] ?? 'test/fixtures');
export const FIXTURE_NAMES = ['jamba-tiny', 'jamba-tiny-unusual'] as const;
export type FixtureName = (typeof FIXTURE_NAMES)[number];

export function fixtureDir(name: FixtureName): string {
  const dir = join(FIXTURES_DIR, name);
  if (!existsSync(join(dir, 'config.json'))) {
    throw new Error(`fixture checkpoint ${dir} is missing: the reference fixtures are committed under test/fixtures (make fixtures regenerates them)`);
  }
  return dir;
}

export interface ReferenceRun {
  greedy_token_ids: number[];
  token_logprobs: number[];
  /** Per step, the top 5 as [token id, logprob], most likely first. */
  top_logprobs: Array<Array<[number, number]>>;
}

export interface ReferenceCase {
  name: string;
  prompt: string;
  prompt_token_ids: number[];
  max_new_tokens: number;
  bf16: ReferenceRun;
  expertsint8: ReferenceRun;
}

export interface Reference {
  cases: ReferenceCase[];
  chat: { messages: Array<{ role: string; content: string }>; rendered: string; token_ids: number[] };
}

export function loadReference(name: FixtureName): Reference {
  return JSON.parse(readFileSync(join(fixtureDir(name), 'reference.json'), 'utf8')) as Reference;
}

export type TestRuntimeOptions = Partial<RuntimeOptions> & { fixture?: FixtureName };

/**
 * A server on 127.0.0.1, any free port, over the real loader, on the CPU backend (the reference) unless
 * JAMBA_TEST_BACKEND names another; resolves once the model is loaded.
 */
export async function startTestRuntime(opts: TestRuntimeOptions = {}): Promise<Runtime> {
  const { fixture = 'jamba-tiny', ...rest } = opts;
  const runtime = await startRuntime({
    ...RUNTIME_DEFAULTS,
    modelDir: fixtureDir(fixture),
    host: '127.0.0.1',
    port: 0,
    maxModelLen: 1024,
    maxNumSeqs: 8,
    backend: (process.env['JAMBA_TEST_BACKEND'] as RuntimeOptions['backend'] | undefined) ?? 'cpu',
    log: silentLogger,
    loadModel,
    ...rest,
  });
  try {
    await runtime.ready;
  } catch (error) {
    await runtime.close();
    throw error;
  }
  return runtime;
}

export interface JsonReply {
  status: number;
  headers: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export async function postJson(runtime: Pick<Runtime, 'url'>, path: string, body: unknown, init: RequestInit = {}): Promise<JsonReply> {
  const res = await fetch(runtime.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** Reads a whole SSE stream: the parsed `data:` events before `[DONE]`, and whether `[DONE]` came. */
export async function postSse(runtime: Pick<Runtime, 'url'>, path: string, body: unknown): Promise<{ status: number; events: any[]; done: boolean }> {
  const res = await fetch(runtime.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  const events: unknown[] = [];
  let done = false;
  for (const block of text.split('\n\n')) {
    if (!block.startsWith('data: ')) continue;
    const data = block.slice('data: '.length);
    if (data === '[DONE]') done = true;
    else events.push(JSON.parse(data));
  }
  return { status: res.status, events, done };
}

/** One sample of a metric from /metrics (summing over label sets that match `labels`). */
export async function metricValue(runtime: Pick<Runtime, 'url'>, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(runtime.url + '/metrics')).text();
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) {
      total += Number(m[4]);
      found = true;
    }
  }
  if (!found) throw new Error(`metric ${name}${JSON.stringify(labels)} not in /metrics`);
  return total;
}

/** Polls `read` until it returns true, or fails after `timeoutMs` with `what`. */
export async function waitFor(what: string, read: () => Promise<boolean> | boolean, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await read()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Token ids out of completions logprobs written with return_tokens_as_token_ids. */
export function tokenIdsOf(tokens: string[]): number[] {
  return tokens.map((t) => {
    const m = /^token_id:(\d+)$/.exec(t);
    if (!m) throw new Error(`token '${t}' is not written as token_id:N`);
    return Number(m[1]);
  });
}

/** The built CLI (`make test` builds dist/ before jest runs). */
export const RUNTIME_MAIN = resolve('dist/runtime/cmd/main.js');

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  exited: Promise<number | null>;
}

/** A real `jamba-runtime serve` process on a free loopback port; resolves once /ready answers 200. */
export async function spawnServe(args: string[], opts: { fixture?: FixtureName; env?: NodeJS.ProcessEnv } = {}): Promise<ServeProcess> {
  if (!existsSync(RUNTIME_MAIN)) throw new Error(`${RUNTIME_MAIN} is missing: run \`npm run build\` first (\`make test\` does)`);
  const child = spawn(process.execPath, [RUNTIME_MAIN, 'serve', '--model', fixtureDir(opts.fixture ?? 'jamba-tiny'), '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...opts.env },
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const url = await new Promise<string>((resolveUrl, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      const entry = JSON.parse(line) as { msg: string; url?: string };
      if (entry.msg === 'listening') resolveUrl(entry.url!);
    });
    child.once('exit', (code) => reject(new Error(`jamba-runtime exited with ${code} before listening`)));
  });
  for (let i = 0; i < 600 && (await fetch(`${url}/ready`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 100));
  return { child, url, exited };
}
