// The contract between `jamba-runtime bench --ops moe` and tools/gpu/peer_moe.py, which times vLLM's MoE
// kernel on the GPU machine for a ratio on one card: both must route the same tokens to the same experts,
// or the two figures weigh different numbers of experts' bytes. The Python side runs here for real; only
// torch and triton, which its routing does not touch and this machine lacks, are stand-in modules.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { benchRouting } from '../../runtime/bench/op-bench.js';
import { repoRoot } from '../harness/exec.js';

const TOKEN_COUNTS = [1, 8, 64, 256, 1024, 4096];

function pythonRouting(counts: number[]): number[][] {
  const script = `
import importlib.util, json, sys, types
torch = types.ModuleType("torch")
triton = types.ModuleType("triton")
tl = types.ModuleType("triton.language")
triton.jit = lambda fn: fn
triton.language = tl
tl.constexpr = int
sys.modules.update({"torch": torch, "triton": triton, "triton.language": tl})
sys.path.insert(0, sys.argv[1].rsplit("/", 1)[0])  # peer_timing, beside it
spec = importlib.util.spec_from_file_location("peer_moe", sys.argv[1])
peer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peer)
print(json.dumps([peer.routing_of_op_bench(int(n)) for n in sys.argv[2].split(",")]))
`;
  const out = execFileSync('python3', ['-c', script, path.join(repoRoot, 'tools/gpu/peer_moe.py'), counts.join(',')], { encoding: 'utf8' });
  return JSON.parse(out) as number[][];
}

test('peer_moe.py routes every token count exactly as the MoE op benchmark does', () => {
  const python = pythonRouting(TOKEN_COUNTS);
  TOKEN_COUNTS.forEach((n, i) => {
    const ours = Array.from(benchRouting(n, 16));
    expect(python[i]).toEqual(ours);
    // two distinct experts per token, all in range: the routing is a real top-2
    for (let t = 0; t < n; t++) {
      expect(ours[2 * t]).not.toBe(ours[2 * t + 1]);
      expect(Math.max(ours[2 * t]!, ours[2 * t + 1]!)).toBeLessThan(16);
    }
  });
  // the counts route differently (the seed is the count), and 64 tokens touch every expert
  expect(python[1]).not.toEqual(python[2]!.slice(0, 16));
  expect(new Set(python[2]).size).toBe(16);
});
