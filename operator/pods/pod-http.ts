// Reading pods' own HTTP pages (/metrics, /progress) from the operator: one keep-alive agent with short
// timeouts, bounded concurrency, and a pod's address. Shared by the autoscaler's scrape source and the
// model progress collector; both read outside the reconcile, so a slow pod delays only its own reading.
import type { V1Pod } from '@kubernetes/client-node';
import { Agent, request } from 'undici';

export interface PodHttpOptions {
  /** Whole-request timeout (connect, headers, body), in ms. */
  timeoutMs: number;
  /** How long an idle connection is kept for the next round (default 30 s). */
  keepAliveMs?: number;
}

export class PodHttp {
  private readonly agent: Agent;
  readonly timeoutMs: number;

  constructor(o: PodHttpOptions) {
    this.timeoutMs = o.timeoutMs;
    this.agent = new Agent({ connect: { timeout: o.timeoutMs }, headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs, keepAliveTimeout: o.keepAliveMs ?? 30_000 });
  }

  /** The body of GET http://address/path; throws on a non-200 answer, a timeout or a connection error. */
  async get(address: string, path: string): Promise<string> {
    const res = await request(`http://${address}${path}`, { dispatcher: this.agent, signal: AbortSignal.timeout(this.timeoutMs) });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
    return text;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/** Runs `task` over `items` with at most `limit` in flight. */
export async function bounded<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** host:port of `port` on the pod's IP (IPv6 in brackets); undefined while the pod has no IP. */
export function podAddress(pod: V1Pod, port: number): string | undefined {
  const ip = pod.status?.podIP;
  if (!ip) return undefined;
  return `${ip.includes(':') ? `[${ip}]` : ip}:${port}`;
}
