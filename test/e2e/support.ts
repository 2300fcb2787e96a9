// Helpers of the real-node tests: the official client through a Service, streaming loads (closed loop:
// workers; open loop: a paced schedule) that record every failure, and what the node's containerd holds
// (through the CRI, as the kubelet sees it).
import path from 'node:path';
import OpenAI from 'openai';
import { kubectlJson } from '../harness/cluster.js';
import { clusterDir, run, toolPath } from '../harness/exec.js';

/**
 * The official client through a Service's ClusterIP. `retries`: the client's own policy (its default is
 * 2: a connection error, or a 503 with Retry-After, is tried again). A stream, once started, is never retried.
 */
export async function serviceClient(namespace: string, service: string, retries = 0): Promise<OpenAI> {
  const svc = await kubectlJson<{ spec: { clusterIP: string; ports: { port: number }[] } }>(['-n', namespace, 'get', 'service', service]);
  return new OpenAI({ baseURL: `http://${svc.spec.clusterIP}:${svc.spec.ports[0]!.port}/v1`, apiKey: 'not-needed', maxRetries: retries, timeout: 60_000 });
}

export interface LoadResult {
  /** Streams that ended with a finish_reason. */
  completed: number;
  /** Streams that ended without one (cut by a pod going away). */
  cut: number;
  /** Requests that failed (after the client's own retries, which are off). */
  errors: string[];
}

/** One streamed completion, counted in `result`: completed, cut (no finish_reason) or failed. */
async function streamOne(client: OpenAI, o: { prompt: string; maxTokens: number; ignoreEos?: boolean }, result: LoadResult): Promise<void> {
  try {
    let finish: string | null | undefined;
    const params: OpenAI.CompletionCreateParamsStreaming & { ignore_eos?: boolean } = {
      model: 'jamba-tiny', prompt: o.prompt, max_tokens: o.maxTokens, stream: true, ...(o.ignoreEos ? { ignore_eos: true } : {}),
    };
    const stream = await client.completions.create(params);
    for await (const chunk of stream) finish = chunk.choices[0]?.finish_reason ?? finish;
    if (finish) result.completed++;
    else result.cut++;
  } catch (error) {
    result.errors.push(`${o.prompt}: ${(error as Error).message}`);
  }
}

/** `workers` loops of streamed completions until stop(); stop() waits for the streams in flight. */
export function startStreamingLoad(client: OpenAI, o: { workers: number; maxTokens: number }): { completed: () => number; stop: () => Promise<LoadResult> } {
  const result: LoadResult = { completed: 0, cut: 0, errors: [] };
  let stopping = false;
  const worker = async (id: number): Promise<void> => {
    for (let i = 0; !stopping; i++) await streamOne(client, { prompt: `worker ${id} request ${i}`, maxTokens: o.maxTokens }, result);
  };
  const workers = Array.from({ length: o.workers }, (_, id) => worker(id));
  return {
    completed: () => result.completed,
    stop: async () => {
      stopping = true;
      await Promise.all(workers);
      return result;
    },
  };
}

export interface PacedLoadOptions {
  /** Tokens each request generates: exactly, EOS ignored, so the offered tokens/s is rate × maxTokens. */
  maxTokens: number;
  /** Requests per second wanted at `elapsedMs` since the start. */
  ratePerSecond: (elapsedMs: number) => number;
  /** Each gap is the mean gap × (1 ± gapJitter), drawn from `random` (seed it for a reproducible run). */
  gapJitter?: number;
  random?: () => number;
}

/**
 * An open-loop load: requests start on an absolute schedule whatever their latency (a slow server gets
 * more at once, as from real users), until stop(); stop() waits for the streams in flight.
 */
export function startPacedLoad(client: OpenAI, o: PacedLoadOptions): { stop: () => Promise<LoadResult & { sent: number }> } {
  const result: LoadResult = { completed: 0, cut: 0, errors: [] };
  const inFlight = new Set<Promise<void>>();
  const random = o.random ?? Math.random;
  const jitter = o.gapJitter ?? 0;
  let stopping = false;
  let wake: (() => void) | undefined;
  let sent = 0;
  const start = Date.now();
  const loop = (async () => {
    for (let next = start; !stopping;) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(next - Date.now(), 0));
        wake = () => { clearTimeout(timer); resolve(); };
      });
      if (stopping) break;
      const request = streamOne(client, { prompt: `paced request ${sent}`, maxTokens: o.maxTokens, ignoreEos: true }, result);
      sent++;
      inFlight.add(request);
      void request.finally(() => inFlight.delete(request));
      next += (1000 / o.ratePerSecond(next - start)) * (1 + jitter * (2 * random() - 1));
    }
  })();
  return {
    stop: async () => {
      stopping = true;
      wake?.();
      await loop;
      await Promise.all(inFlight);
      return { ...result, sent };
    },
  };
}

const CRI_ENDPOINT = `unix://${path.join(clusterDir, 'node', 'containerd.sock')}`;

/** Sandboxes and containers on the real node that belong to pods with these UIDs. */
export async function nodeContainers(podUids: string[]): Promise<string[]> {
  const crictl = (args: string[]) => run(toolPath('crictl'), ['--runtime-endpoint', CRI_ENDPOINT, '--image-endpoint', CRI_ENDPOINT, ...args]);
  const sandboxes = JSON.parse((await crictl(['pods', '-o', 'json'])).stdout) as { items: { id: string; metadata: { uid: string } }[] };
  const containers = JSON.parse((await crictl(['ps', '-a', '-o', 'json'])).stdout) as { containers: { id: string; labels: Record<string, string> }[] };
  return [
    ...sandboxes.items.filter((s) => podUids.includes(s.metadata.uid)).map((s) => `sandbox ${s.id}`),
    ...containers.containers.filter((c) => podUids.includes(c.labels['io.kubernetes.pod.uid'] ?? '')).map((c) => `container ${c.id}`),
  ];
}
