// Helpers of the real-node tests: a light streaming load that records every failure, and what the
// node's containerd holds (through the CRI, as the kubelet sees it).
import path from 'node:path';
import type OpenAI from 'openai';
import { clusterDir, run, toolPath } from '../harness/exec.js';

export interface LoadResult {
  /** Streams that ended with a finish_reason. */
  completed: number;
  /** Streams that ended without one (cut by a pod going away). */
  cut: number;
  /** Requests that failed (after the client's own retries, which are off). */
  errors: string[];
}

/** `workers` loops of streamed completions until stop(); stop() waits for the streams in flight. */
export function startStreamingLoad(client: OpenAI, o: { workers: number; maxTokens: number }): { completed: () => number; stop: () => Promise<LoadResult> } {
  const result: LoadResult = { completed: 0, cut: 0, errors: [] };
  let stopping = false;
  const worker = async (id: number): Promise<void> => {
    for (let i = 0; !stopping; i++) {
      try {
        let finish: string | null | undefined;
        const stream = await client.completions.create({ model: 'jamba-tiny', prompt: `worker ${id} request ${i}`, max_tokens: o.maxTokens, stream: true });
        for await (const chunk of stream) finish = chunk.choices[0]?.finish_reason ?? finish;
        if (finish) result.completed++;
        else result.cut++;
      } catch (error) {
        result.errors.push(`worker ${id} request ${i}: ${(error as Error).message}`);
      }
    }
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
