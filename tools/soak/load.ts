// Mixed load for soaks (test/runtime/soak.test.ts for seconds, tools/bench/soak.ts for minutes):
// `concurrency` clients on loopback, each sending, until the time is up, completions or chat requests,
// streamed or not, and abandoning one in five midway (the client disconnects after a random delay).
// Counts what came back; any 5xx other than 503 counts as an error.
import { Agent, fetch } from 'undici';
import { Xoshiro128 } from '../../runtime/sampling/prng.js';

export interface LoadOptions {
  url: string;
  durationMs: number;
  concurrency: number;
  seed?: number;
  /** Share of requests the client abandons midway. */
  disconnectShare?: number;
}

export interface LoadStats {
  requests: number;
  completed: number;
  disconnected: number;
  /** 5xx other than 503, or a connection error on a request we did not abandon. */
  errors: number;
  byStatus: Record<string, number>;
  completionTokens: number;
  /** The first few errors, for the report. */
  errorSamples: string[];
}

export async function runMixedLoad(o: LoadOptions): Promise<LoadStats> {
  const stats: LoadStats = { requests: 0, completed: 0, disconnected: 0, errors: 0, byStatus: {}, completionTokens: 0, errorSamples: [] };
  const error = (what: string) => {
    stats.errors++;
    if (stats.errorSamples.length < 5) stats.errorSamples.push(what.slice(0, 300));
  };
  const end = Date.now() + o.durationMs;
  const rng = new Xoshiro128(o.seed ?? 1);
  // Idle connections are dropped well before the server's 5 s keep-alive timeout, so a request never
  // races the server closing the connection it was about to reuse (a client-side error, not the server's).
  const dispatcher = new Agent({ keepAliveTimeout: 1000, keepAliveTimeoutThreshold: 500 });
  const client = async () => {
    while (Date.now() < end) {
      const stream = rng.nextFloat() < 0.5;
      const chat = rng.nextFloat() < 0.5;
      const abandon = rng.nextFloat() < (o.disconnectShare ?? 0.2);
      const maxTokens = 1 + Math.floor(rng.nextFloat() * 16);
      const body = chat
        ? { messages: [{ role: 'user', content: `tell me about number ${Math.floor(rng.nextFloat() * 1000)}` }], max_tokens: maxTokens, stream, ...(stream ? { stream_options: { include_usage: true } } : {}) }
        : { prompt: `The number ${Math.floor(rng.nextFloat() * 1000)} is`, max_tokens: maxTokens, stream, ignore_eos: rng.nextFloat() < 0.5 };
      const controller = new AbortController();
      const timer = abandon ? setTimeout(() => controller.abort(), Math.floor(rng.nextFloat() * 150)) : undefined;
      stats.requests++;
      try {
        const res = await fetch(`${o.url}${chat ? '/v1/chat/completions' : '/v1/completions'}`, {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: controller.signal, dispatcher,
        });
        const text = await res.text();
        stats.byStatus[res.status] = (stats.byStatus[res.status] ?? 0) + 1;
        if (res.status >= 500 && res.status !== 503) error(`${res.status} ${text}`);
        if (res.status === 200) {
          stats.completed++;
          stats.completionTokens += usageOf(text, stream);
        }
      } catch (e) {
        if (controller.signal.aborted) stats.disconnected++;
        else error(`${(e as Error).message}: ${((e as Error).cause as Error | undefined)?.message ?? ''}`);
      } finally {
        clearTimeout(timer);
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, client));
  await dispatcher.close();
  return stats;
}

function usageOf(text: string, stream: boolean): number {
  try {
    if (!stream) return (JSON.parse(text) as { usage?: { completion_tokens?: number } }).usage?.completion_tokens ?? 0;
    const last = text.split('\n\n').filter((b) => b.startsWith('data: {')).map((b) => JSON.parse(b.slice(6)) as { usage?: { completion_tokens?: number } }).findLast((e) => e.usage);
    return last?.usage?.completion_tokens ?? 0;
  } catch {
    return 0;
  }
}
