// A property-based fuzzer (fast-check) for the runtime's HTTP API, on loopback only, bounded in
// count and time. Used by test/runtime/fuzz.test.ts (a few hundred cases, seconds) and by
// tools/bench/fuzz-bench.ts (thousands, against the real CLI process).
//
// What it sends: JSON bodies built from the API's own fields with values of every wrong kind (types,
// huge/negative/fractional numbers, unicode edge cases, lone surrogates, deep nesting), raw bodies
// (random bytes, invalid UTF-8 in strings, valid JSON cut short), wrong methods/paths/content types,
// and truncated or slow-loris uploads, plus storms of concurrent connections closed at random moments.
// What it requires of every answer: a 200 of the endpoint's shape, or an error status the API uses
// with OpenAI's error body `{"error": {message, type, param, code}}` and nothing else; never a 5xx
// other than 503, never silence past the deadline.
import { connect, type Socket } from 'node:net';
import fc from 'fast-check';

export interface FuzzTarget {
  host: string;
  port: number;
  model: string;
}

export interface FuzzReport {
  cases: number;
  /** 5xx other than 503, or the server gone (connection refused). */
  crashes: number;
  /** No complete answer within the deadline. */
  hangs: number;
  /** An answer of the wrong shape or status. */
  badAnswers: number;
  failures: string[];
  /** Answers by status ('none': the connection closed without one, as when the client gave up). */
  statuses: Record<string, number>;
}

export const newReport = (): FuzzReport => ({ cases: 0, crashes: 0, hangs: 0, badAnswers: 0, failures: [], statuses: {} });

/** Statuses the API answers errors with. */
const ERROR_STATUSES = new Set([400, 404, 405, 408, 413, 429, 503]);

interface RawAnswer {
  /** Undefined when the connection closed without a status line. */
  status?: number;
  headers: Record<string, string>;
  body: Buffer;
  timedOut: boolean;
  refused: boolean;
}

/**
 * One exchange over a fresh socket: writes `parts` (pausing `gapMs` between them), then reads until
 * the server closes or `deadlineMs` passes. `closeAfterWrite` closes our side right after writing
 * (a client that gives up), in which case no answer is required.
 */
export function exchange(t: FuzzTarget, parts: (string | Buffer)[], o: { deadlineMs: number; gapMs?: number; closeAfterWrite?: boolean }): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const socket: Socket = connect(t.port, t.host);
    const finish = (extra: Partial<RawAnswer>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...parse(Buffer.concat(chunks)), timedOut: false, refused: false, ...extra });
    };
    const timer = setTimeout(() => finish({ timedOut: true }), o.deadlineMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => finish({}));
    socket.on('close', () => finish({}));
    socket.on('error', (e: NodeJS.ErrnoException) => finish({ refused: e.code === 'ECONNREFUSED' }));
    socket.on('connect', async () => {
      for (const [i, p] of parts.entries()) {
        if (socket.destroyed) return;
        socket.write(p);
        if (o.gapMs && i < parts.length - 1) await new Promise((r) => setTimeout(r, o.gapMs));
      }
      if (o.closeAfterWrite) finish({});
    });
  });
}

function parse(raw: Buffer): Omit<RawAnswer, 'timedOut' | 'refused'> {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return { headers: {}, body: Buffer.alloc(0) };
  const [statusLine, ...lines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? '')?.[1]);
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  let body = raw.subarray(end + 4);
  if (headers['transfer-encoding'] === 'chunked') body = dechunk(body);
  return { status: Number.isFinite(status) ? status : undefined, headers, body };
}

function dechunk(b: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  while (i < b.length) {
    const eol = b.indexOf('\r\n', i);
    if (eol < 0) break;
    const size = parseInt(b.subarray(i, eol).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    out.push(b.subarray(eol + 2, eol + 2 + size));
    i = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}

export function request(t: FuzzTarget, method: string, path: string, body: string | Buffer, headers: Record<string, string> = {}): Buffer[] {
  const payload = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const head = [`${method} ${path} HTTP/1.1`, `host: ${t.host}:${t.port}`, 'connection: close', `content-length: ${payload.length}`];
  if (!('content-type' in headers)) head.push('content-type: application/json');
  for (const [k, v] of Object.entries(headers)) head.push(`${k}: ${v}`);
  return [Buffer.from(head.join('\r\n') + '\r\n\r\n', 'latin1'), payload];
}

/** Checks an answer; returns what is wrong with it, or undefined. */
export function judge(a: RawAnswer, expect: { endpoint?: 'completions' | 'chat'; answerRequired: boolean }): { kind: 'crash' | 'hang' | 'bad'; why: string } | undefined {
  if (a.refused) return { kind: 'crash', why: 'connection refused: the server is gone' };
  if (a.timedOut) return { kind: 'hang', why: 'no complete answer before the deadline' };
  if (a.status === undefined) return expect.answerRequired ? { kind: 'bad', why: 'connection closed without an answer' } : undefined;
  if (a.status >= 500 && a.status !== 503) return { kind: 'crash', why: `status ${a.status}: ${a.body.toString('utf8').slice(0, 300)}` };
  if (a.status === 200) return expect.endpoint ? judgeSuccess(a, expect.endpoint) : undefined;
  if (!ERROR_STATUSES.has(a.status)) return { kind: 'bad', why: `unexpected status ${a.status}` };
  return errorShape(a.body.toString('utf8'));
}

function errorShape(text: string): { kind: 'bad'; why: string } | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { kind: 'bad', why: `error body is not JSON: ${text.slice(0, 200)}` };
  }
  const e = (body as { error?: Record<string, unknown> }).error;
  const ok = body !== null && typeof body === 'object' && Object.keys(body).length === 1 && e !== undefined &&
    Object.keys(e).sort().join() === 'code,message,param,type' && typeof e.message === 'string' && e.message.length > 0 &&
    typeof e.type === 'string' && (e.param === null || typeof e.param === 'string') && (e.code === null || typeof e.code === 'string');
  return ok ? undefined : { kind: 'bad', why: `error body not in OpenAI's shape: ${text.slice(0, 200)}` };
}

function judgeSuccess(a: RawAnswer, endpoint: 'completions' | 'chat'): { kind: 'bad'; why: string } | undefined {
  const text = a.body.toString('utf8');
  if ((a.headers['content-type'] ?? '').startsWith('text/event-stream')) {
    const events = text.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => b.slice(6));
    if (events.at(-1) !== '[DONE]') return { kind: 'bad', why: 'stream did not end with [DONE]' };
    for (const e of events.slice(0, -1)) {
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(e) as Record<string, unknown>;
      } catch {
        return { kind: 'bad', why: `stream event is not JSON: ${e.slice(0, 200)}` };
      }
      if ('error' in parsed) {
        const bad = errorShape(e);
        if (bad) return bad;
      } else if (parsed.object !== (endpoint === 'chat' ? 'chat.completion.chunk' : 'text_completion')) {
        return { kind: 'bad', why: `stream event of the wrong object: ${e.slice(0, 200)}` };
      }
    }
    return undefined;
  }
  try {
    const body = JSON.parse(text) as { object?: string; choices?: unknown[] };
    const object = endpoint === 'chat' ? 'chat.completion' : 'text_completion';
    return body.object === object && Array.isArray(body.choices) && body.choices.length === 1 ? undefined : { kind: 'bad', why: `200 of the wrong shape: ${text.slice(0, 200)}` };
  } catch {
    return { kind: 'bad', why: `200 body is not JSON: ${text.slice(0, 200)}` };
  }
}

export function record(report: FuzzReport, what: string, verdict: ReturnType<typeof judge>, status?: number): void {
  report.cases++;
  const key = status === undefined ? 'none' : String(status);
  report.statuses[key] = (report.statuses[key] ?? 0) + 1;
  if (!verdict) return;
  if (verdict.kind === 'crash') report.crashes++;
  else if (verdict.kind === 'hang') report.hangs++;
  else report.badAnswers++;
  if (report.failures.length < 20) report.failures.push(`${verdict.kind}: ${verdict.why} ← ${what.slice(0, 300)}`);
}

// ---- arbitraries -------------------------------------------------------------------------------

const weirdString = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }), // any code point, lone surrogates included
  fc.constantFrom('', ' ', '\u0000', '\uFEFF', '\uD800', '\uDFFF', 'a\u0301', '👩‍👩‍👧‍👦', '\u202E', '<|im_end|>', '</s>', '{{', '{%', '\r\n'),
  fc.string({ maxLength: 4 }).map((s) => s.repeat(60)),
);
const weirdNumber = fc.oneof(
  fc.integer({ min: -3, max: 8 }),
  fc.constantFrom(0, -1, 1.5, -0, 2 ** 31, 2 ** 53, -(2 ** 53), 1e308, -1e308, 5e-324, Number.MAX_SAFE_INTEGER + 2),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const tokenId = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: -5, max: 2 ** 31 }), fc.constantFrom(-0, 1.5, 2 ** 53, 1e300));
/** A value of any JSON type, shallow. */
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  weirdString, weirdNumber, fc.boolean(), fc.constant(null),
  fc.array(fc.oneof(weirdNumber, weirdString), { maxLength: 5 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.oneof(weirdNumber, weirdString), { maxKeys: 3 }),
);
/**
 * A body: valid values for a random subset of the fields, then 0–2 fields (known or not) set to a
 * value of any kind, so that both the accepting paths and each single refusal are reached.
 */
function body(good: Record<string, fc.Arbitrary<unknown>>, required: string[]): fc.Arbitrary<Record<string, unknown>> {
  const names = [...Object.keys(good), 'unknown_field', 'model'];
  const mutation = fc.tuple(fc.constantFrom(...names), anyValue);
  return fc.tuple(fc.record(good, { requiredKeys: required }), fc.array(mutation, { maxLength: 2 }), fc.nat({ max: 3 })).map(([b, muts, flip]) => {
    const out: Record<string, unknown> = { ...b };
    // One case in four keeps the body valid.
    if (flip > 0) for (const [name, value] of muts) out[name] = value;
    return out;
  });
}

const sampling = {
  max_tokens: fc.integer({ min: 1, max: 6 }),
  temperature: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 2, noNaN: true })),
  top_p: fc.double({ min: 0, max: 1, noNaN: true, minExcluded: true }),
  top_k: fc.integer({ min: -1, max: 100 }),
  seed: fc.integer(),
  stop: fc.oneof(fc.string({ minLength: 1, maxLength: 4 }), fc.array(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 4 }), { maxLength: 4 })),
  stop_token_ids: fc.array(fc.integer({ min: 0, max: 1023 }), { maxLength: 4 }),
  stream: fc.boolean(),
  ignore_eos: fc.boolean(),
  return_tokens_as_token_ids: fc.boolean(),
};

const prompt = fc.oneof(
  weirdString.filter((s) => s.length > 0),
  fc.array(fc.integer({ min: 0, max: 1023 }), { minLength: 1, maxLength: 12 }),
  fc.array(tokenId, { maxLength: 12 }),
  fc.array(fc.oneof(weirdString, fc.array(tokenId, { maxLength: 4 })), { maxLength: 3 }),
);

export const completionBody = body({
  prompt,
  logprobs: fc.integer({ min: 0, max: 5 }),
  echo: fc.boolean(),
  ...sampling,
}, ['prompt']);

const contentPart = fc.oneof(
  fc.record({ type: fc.constant('text'), text: weirdString }),
  fc.record({ type: fc.constantFrom('image_url', 'text', ''), text: anyValue }, { requiredKeys: [] }),
);
const message = fc.oneof(
  { weight: 6, arbitrary: fc.record({ role: fc.constantFrom('system', 'user', 'assistant'), content: weirdString }) },
  { weight: 2, arbitrary: fc.record({ role: fc.constantFrom('user', 'tool', '', 'x'.repeat(300)), content: fc.oneof(fc.array(contentPart, { maxLength: 3 }), fc.constant(null), anyValue) }, { requiredKeys: [] }) },
  { weight: 1, arbitrary: anyValue },
);
export const chatBody = body({
  messages: fc.array(message, { minLength: 1, maxLength: 4 }),
  max_completion_tokens: fc.integer({ min: 1, max: 6 }),
  logprobs: fc.boolean(),
  ...sampling,
}, ['messages', 'max_completion_tokens']); // without it, chat generates to the end of the context (slow)

/** Bodies that are not JSON objects, or not JSON at all, or not valid UTF-8. */
export const rawBody: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b)),
  // Valid JSON cut short.
  fc.tuple(completionBody, fc.nat()).map(([b, n]) => { const s = Buffer.from(JSON.stringify(b)); return s.subarray(0, n % Math.max(1, s.length)); }),
  // Invalid UTF-8 inside a JSON string.
  fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 16 }).map((b) => Buffer.from(b.map((x) => 0x80 | x))), weirdString).map(([bad, s]) =>
    Buffer.concat([Buffer.from('{"prompt":"' + s.replace(/["\\]/g, '') + ''), bad, Buffer.from('","max_tokens":2}')])),
  fc.constantFrom('null', '[]', '"prompt"', '12', 'true', '{', '}', '{"prompt":', '\u0000', '{"prompt":"a",}', '{"a":1}{"b":2}').map((s) => Buffer.from(s)),
  // Deep nesting.
  fc.integer({ min: 1, max: 100_000 }).map((d) => Buffer.from(`{"prompt":${'['.repeat(d)}${']'.repeat(d)}}`)),
  fc.integer({ min: 1, max: 100_000 }).map((d) => Buffer.from(`${'{"a":'.repeat(d)}1${'}'.repeat(d)}`)),
);

export const oddRequest = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'),
  path: fc.constantFrom('/v1/completions', '/v1/chat/completions', '/v1/models', '/health', '/ready', '/metrics', '/', '/v1', '/v1/completions/x', '/v1/completions?x=1', '/%ff', '/v1/../health'),
  contentType: fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', '', 'application/json; charset=latin1'),
  body: fc.oneof(rawBody, completionBody.map((b) => Buffer.from(JSON.stringify(b)))),
});

// ---- runners -------------------------------------------------------------------------------------

export interface FuzzOptions {
  seed: number;
  /** Cases per property. */
  runs: number;
  deadlineMs: number;
  /** Stop starting new cases after this many ms of the phase. */
  timeBudgetMs: number;
  /** Runs after every case (the test's own extra checks); throwing fails the case. */
  log?: (line: string) => void;
}

async function property<T>(name: string, arb: fc.Arbitrary<T>, o: FuzzOptions, report: FuzzReport, body: (v: T) => Promise<{ what: string; verdict: ReturnType<typeof judge>; status?: number }>): Promise<void> {
  const started = Date.now();
  await fc.assert(
    fc.asyncProperty(arb, async (v) => {
      if (Date.now() - started > o.timeBudgetMs) return;
      const { what, verdict, status } = await body(v);
      record(report, `${name}: ${what}`, verdict, status);
    }),
    { seed: o.seed, numRuns: o.runs, endOnFailure: true },
  );
}

/** JSON bodies of both generation endpoints, streaming or not. */
export async function fuzzJsonBodies(t: FuzzTarget, o: FuzzOptions, report: FuzzReport): Promise<void> {
  for (const [endpoint, path, arb] of [['completions', '/v1/completions', completionBody], ['chat', '/v1/chat/completions', chatBody]] as const) {
    await property(endpoint, arb as fc.Arbitrary<Record<string, unknown>>, o, report, async (b) => {
      const text = JSON.stringify(b);
      const answer = await exchange(t, request(t, 'POST', path, text), { deadlineMs: o.deadlineMs });
      return { what: text, verdict: judge(answer, { endpoint, answerRequired: true }), status: answer.status };
    });
  }
}

/** Raw bodies, wrong methods, paths and content types. */
export async function fuzzRawRequests(t: FuzzTarget, o: FuzzOptions, report: FuzzReport): Promise<void> {
  await property('raw', oddRequest, o, report, async (r) => {
    const headers = r.contentType ? { 'content-type': r.contentType } : { 'content-type': '' };
    const answer = await exchange(t, request(t, r.method, r.path, r.body, headers), { deadlineMs: o.deadlineMs });
    const endpoint = r.method === 'POST' ? (r.path === '/v1/completions' ? 'completions' : r.path === '/v1/chat/completions' ? 'chat' : undefined) : undefined;
    const what = `${r.method} ${r.path} [${r.contentType}] ${r.body.subarray(0, 120).toString('latin1')}`;
    // HEAD answers carry no body to judge.
    if (r.method === 'HEAD') return { what, verdict: answer.timedOut ? judge(answer, { answerRequired: true }) : undefined, status: answer.status };
    // /metrics and friends answer 200 with their own bodies.
    return { what, verdict: judge(answer, { endpoint, answerRequired: true }), status: answer.status };
  });
}

/**
 * Uploads cut short: a declared body longer than what is sent, then the client closes (no answer
 * required) or waits (the server must answer or close within the deadline, never hang forever is the
 * server's body-read timeout's job, so those are judged by the caller's deadline).
 */
export async function fuzzTruncatedUploads(t: FuzzTarget, o: FuzzOptions, report: FuzzReport): Promise<void> {
  const arb = fc.record({ body: completionBody, cut: fc.nat(), extra: fc.integer({ min: 1, max: 10_000 }), slow: fc.boolean() });
  await property('truncated', arb, o, report, async (c) => {
    const full = Buffer.from(JSON.stringify(c.body));
    const sent = full.subarray(0, c.cut % full.length);
    const head = `POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${full.length + c.extra}\r\n\r\n`;
    // Slow: the body dribbles in (slow-loris) before the client gives up.
    const parts = c.slow ? [head, ...[...sent].map((byte) => Buffer.from([byte])).slice(0, 20)] : [head, sent];
    const answer = await exchange(t, parts, { deadlineMs: o.deadlineMs, gapMs: c.slow ? 5 : 0, closeAfterWrite: true });
    return { what: `${sent.length}/${full.length + c.extra} bytes${c.slow ? ' slowly' : ''}`, verdict: judge(answer, { answerRequired: false }), status: answer.status };
  });
}

/**
 * `connections` concurrent valid requests (streaming or not), each closed by the client at a random
 * moment: before sending, mid-headers, mid-body, after the body, after the first answer bytes, or never.
 */
export async function connectionStorm(t: FuzzTarget, o: { seed: number; connections: number; concurrency: number; deadlineMs: number }, report: FuzzReport): Promise<void> {
  // Mostly closed midway; one in twenty read to the end (those cost generation time).
  const close = fc.oneof({ weight: 19, arbitrary: fc.integer({ min: 0, max: 4 }) }, { weight: 1, arbitrary: fc.constant(5) });
  const cases = fc.sample(fc.record({ stream: fc.boolean(), chat: fc.boolean(), maxTokens: fc.integer({ min: 1, max: 8 }), close, delayMs: fc.integer({ min: 0, max: 30 }) }), { seed: o.seed, numRuns: o.connections });
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const c = cases[next++]!;
      const body = c.chat
        ? { messages: [{ role: 'user', content: 'hello there' }], max_tokens: c.maxTokens, stream: c.stream }
        : { prompt: 'The cat sat on', max_tokens: c.maxTokens, stream: c.stream };
      const [head, payload] = request(t, 'POST', c.chat ? '/v1/chat/completions' : '/v1/completions', JSON.stringify(body));
      const { verdict, status } = await stormOne(t, head!, payload!, c.close, c.delayMs, o.deadlineMs);
      record(report, `storm ${JSON.stringify(c)}`, verdict, status);
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
}

function stormOne(t: FuzzTarget, head: Buffer, payload: Buffer, close: number, delayMs: number, deadlineMs: number): Promise<{ verdict: ReturnType<typeof judge>; status?: number }> {
  return new Promise((resolve) => {
    const socket = connect(t.port, t.host);
    let done = false;
    let status: number | undefined;
    const end = (verdict: ReturnType<typeof judge>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ verdict, status });
    };
    const timer = setTimeout(() => end({ kind: 'hang', why: 'no answer before the deadline' }), deadlineMs);
    let got = 0;
    socket.on('error', (e: NodeJS.ErrnoException) => end(e.code === 'ECONNREFUSED' ? { kind: 'crash', why: 'connection refused' } : undefined));
    socket.on('data', (c: Buffer) => {
      got += c.length;
      if (close === 4) setTimeout(() => end(undefined), delayMs);
      if (got === c.length) {
        const s = Number(/^HTTP\/1\.1 (\d{3})/.exec(c.toString('latin1', 0, 16))?.[1]);
        status = Number.isFinite(s) ? s : undefined;
        if (status !== undefined && status >= 500 && status !== 503) end({ kind: 'crash', why: `status ${status}` });
      }
    });
    socket.on('end', () => end(got > 0 || close < 5 ? undefined : { kind: 'bad', why: 'closed without an answer' }));
    socket.on('connect', () => {
      const later = (fn: () => void) => setTimeout(fn, delayMs);
      switch (close) {
        case 0: return end(undefined);
        case 1: socket.write(head.subarray(0, head.length >> 1)); return later(() => end(undefined));
        case 2: socket.write(head); socket.write(payload.subarray(0, payload.length >> 1)); return later(() => end(undefined));
        case 3: socket.write(head); socket.write(payload); return later(() => end(undefined));
        default: socket.write(head); socket.write(payload);
      }
    });
  });
}
