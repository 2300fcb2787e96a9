// A stand-in for the native library (CI has no GPU; the GPU machine's check runs the real one,
// tools/gpu/check.ts): it keeps what each jb_run was given and answers token id 7 for every sampled row.
import type { NativeLib } from './native.js';

/** The op codes of an encoded program ([opcode, argc, args...] per op). */
export function opCodes(program: Float64Array): number[] {
  const codes: number[] = [];
  for (let at = 0; at < program.length; at += 2 + program[at + 1]!) codes.push(program[at]!);
  return codes;
}

export interface Run {
  programLength: number;
  graphKey: number;
  /** The ops it ran, as codes in order (none when it replayed a graph). */
  ops: number[];
}

/** Mimics jb_run's graph rule: a key's first run is eager, the second captures, later ones replay. */
export function standIn(): { lib: NativeLib; runs: Run[] } {
  const runs: Run[] = [];
  const seen = new Map<number, number>();
  let next = 1 << 20;
  const lib: NativeLib = {
    context: 0,
    lastError: () => '',
    deviceInfo: () => 0,
    deviceCount: () => 1,
    malloc: (bytes, out) => {
      out[0] = next;
      next += Math.ceil(bytes / 256) * 256;
      return 0;
    },
    free: () => 0,
    upload: () => 0,
    download: () => 0,
    hostRegister: () => 0,
    hostUnregister: () => 0,
    sync: () => 0,
    convert: () => 0,
    quantizeInt8: () => 0,
    fillRandomBf16: () => 0,
    run: async (program, length, _payload, _payloadBytes, _payloadDev, result, resultBytes, _resultDev, graphKey) => {
      runs.push({ programLength: length, graphKey, ops: opCodes(program.subarray(0, length)) });
      if (graphKey >= 0) seen.set(graphKey, (seen.get(graphKey) ?? 0) + 1);
      new Int32Array(result.buffer, result.byteOffset, resultBytes / 4).fill(7); // token id 7 everywhere
      return 0;
    },
    resetGraphs: () => {
      seen.clear();
      return 0;
    },
    hasGraph: (key) => ((seen.get(key) ?? 0) >= 2 ? 1 : 0),
    measureCeilings: () => 0,
    opProfile: () => 0,
    lastRunMs: () => 0,
    release: () => 0,
  };
  return { lib, runs };
}
