// A streaming load against an OpenAI-compatible /v1/completions endpoint: `concurrency` clients each
// send requests back to back (a prompt of `promptTokens` random token ids, `maxTokens` generated with
// ignore_eos), for `requests` requests in all. Measures what users feel: time to first token, the gaps
// between streamed tokens (inter-token latency), output tokens/s over the run, and failures.
import { Xoshiro128 } from '../sampling/prng.js';

export interface LoadOptions {
  url: string;
  model: string;
  concurrency: number;
  requests: number;
  promptTokens: number;
  maxTokens: number;
  vocabSize: number;
  /** Per-request deadline (ms). */
  timeoutMs?: number;
}

export interface LoadResult {
  requests: number;
  failed: number;
  /** Requests that ended with fewer tokens than asked (a cut stream). */
  truncated: number;
  seconds: number;
  outputTokens: number;
  outputTokensPerSecond: number;
  ttftMs: { p50: number; p99: number };
  itlMs: { p50: number; p99: number };
  errors: string[];
}

export function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const pos = q * (s.length - 1);
  const lo = Math.floor(pos);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (pos - lo);
}

interface One {
  ok: boolean;
  tokens: number;
  ttft?: number;
  gaps: number[];
  error?: string;
}

async function oneRequest(opts: LoadOptions, prompt: number[]): Promise<One> {
  const t0 = performance.now();
  const gaps: number[] = [];
  let tokens = 0;
  let ttft: number | undefined;
  let last = t0;
  try {
    const res = await fetch(`${opts.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: opts.model, prompt, max_tokens: opts.maxTokens, ignore_eos: true, temperature: 0, stream: true }),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 600_000),
    });
    if (!res.ok || !res.body) return { ok: false, tokens, gaps, error: `HTTP ${res.status}: ${(await res.text()).slice(0, 200)}` };
    const decoder = new TextDecoder();
    let buffer = '';
    let done = false;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let at: number;
      while ((at = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        if (!event.startsWith('data: ')) continue;
        const data = event.slice(6);
        if (data === '[DONE]') {
          done = true;
          continue;
        }
        const parsed = JSON.parse(data) as { choices?: { text?: string; finish_reason?: string | null }[] };
        const choice = parsed.choices?.[0];
        if (!choice || (choice.text ?? '') === '') continue;
        const now = performance.now();
        if (ttft === undefined) ttft = now - t0;
        else gaps.push(now - last);
        last = now;
        tokens++;
      }
    }
    return { ok: done, tokens, ttft, gaps, error: done ? undefined : 'the stream ended without [DONE]' };
  } catch (error) {
    return { ok: false, tokens, ttft, gaps, error: (error as Error).message };
  }
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const rng = new Xoshiro128(17);
  let issued = 0;
  const results: One[] = [];
  const t0 = performance.now();
  const client = async (): Promise<void> => {
    while (issued < opts.requests) {
      issued++;
      const prompt = Array.from({ length: opts.promptTokens }, () => 1 + (rng.nextUint32() % (opts.vocabSize - 1)));
      results.push(await oneRequest(opts, prompt));
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, client));
  const seconds = (performance.now() - t0) / 1000;
  const outputTokens = results.reduce((a, r) => a + r.tokens, 0);
  const ttfts = results.filter((r) => r.ttft !== undefined).map((r) => r.ttft!);
  const gaps = results.flatMap((r) => r.gaps);
  return {
    requests: results.length,
    failed: results.filter((r) => !r.ok).length,
    truncated: results.filter((r) => r.ok && r.tokens < opts.maxTokens).length,
    seconds,
    outputTokens,
    outputTokensPerSecond: outputTokens / seconds,
    ttftMs: { p50: quantile(ttfts, 0.5), p99: quantile(ttfts, 0.99) },
    itlMs: { p50: quantile(gaps, 0.5), p99: quantile(gaps, 0.99) },
    errors: [...new Set(results.filter((r) => r.error).map((r) => r.error!))].slice(0, 5),
  };
}
