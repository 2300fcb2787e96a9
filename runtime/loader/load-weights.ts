// Streams a checkpoint's tensors, one at a time, into host arrays handed to `onTensor` (which
// uploads them to a backend). Validates the whole checkpoint against the expected tensor specs
// before reading any data. With ExpertsInt8, expert/MLP weights are quantized row by row straight
// from the checkpoint's bytes, so no fp32 copy of them ever exists.
import type { LoadProgress } from '../engine/model-runner.js';
import { int8WeightBytes, isExpertsInt8Weight, quantizeRows } from '../quant/expertsint8.js';
import type { Checkpoint } from './checkpoint.js';
import { decodeInto, toFloat32 } from './dtype.js';
import type { TensorEntry } from './safetensors.js';

export interface ExpectedTensor {
  name: string;
  shape: number[];
}

export type HostWeight =
  | { kind: 'f32'; data: Float32Array; shape: number[] }
  | { kind: 'int8'; q: Int8Array; scale: Float32Array; shape: number[] };

export interface LoadWeightsOptions {
  quantizeExperts: boolean;
  /** Checkpoint tensors that may be present and are skipped. */
  ignorable?: ReadonlySet<string>;
  onProgress?: (p: LoadProgress) => void;
  /** Injected clock (ms) for the ETA. */
  now?: () => number;
}

export interface WeightBytes {
  /** Bytes in a bf16 deployment: 2 per parameter. */
  bf16: number;
  /** Bytes as deployed: 2 per bf16 parameter, 1 per int8 parameter plus 4 per scale. */
  deployed: number;
}

const MAX_LISTED = 8;

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Every mismatch between the checkpoint and the model, each naming the file and the tensor. */
export function checkTensors(ckpt: Checkpoint, expected: ExpectedTensor[], ignorable: ReadonlySet<string> = new Set()): void {
  const problems: string[] = [];
  const wanted = new Set(expected.map((e) => e.name));
  for (const spec of expected) {
    const entry = ckpt.tensors.get(spec.name);
    if (!entry) problems.push(`${ckpt.listingFile}: missing tensor ${spec.name} (shape [${spec.shape.join(', ')}])`);
    else if (!sameShape(entry.shape, spec.shape)) {
      problems.push(`${entry.file}: tensor ${spec.name} has shape [${entry.shape.join(', ')}], expected [${spec.shape.join(', ')}]`);
    }
  }
  for (const entry of ckpt.tensors.values()) {
    if (!wanted.has(entry.name) && !ignorable.has(entry.name)) problems.push(`${entry.file}: unexpected tensor ${entry.name}`);
  }
  if (problems.length > 0) {
    const more = problems.length > MAX_LISTED ? `\n  … and ${problems.length - MAX_LISTED} more` : '';
    throw new Error(`checkpoint ${ckpt.dir} does not match config.json:\n  ${problems.slice(0, MAX_LISTED).join('\n  ')}${more}`);
  }
}

function quantize(entry: TensorEntry, bytes: Uint8Array): HostWeight {
  const [rows, cols] = entry.shape as [number, number];
  const { q, scale } = quantizeRows(rows, cols, (r, out) => decodeInto(bytes, entry.dtype, r * cols, cols, out));
  return { kind: 'int8', q, scale, shape: entry.shape };
}

export async function loadWeights(
  ckpt: Checkpoint,
  expected: ExpectedTensor[],
  opts: LoadWeightsOptions,
  onTensor: (name: string, weight: HostWeight) => void,
): Promise<WeightBytes> {
  checkTensors(ckpt, expected, opts.ignorable);
  const now = opts.now ?? Date.now;
  // Read in file order so each shard is streamed front to back.
  const entries = expected
    .map((spec) => ckpt.tensors.get(spec.name)!)
    .sort((a, b) => (a.file === b.file ? a.offset - b.offset : a.file < b.file ? -1 : 1));
  const bytesTotal = entries.reduce((sum, e) => sum + e.byteLength, 0);
  const started = now();
  let bytesLoaded = 0;
  const bytes: WeightBytes = { bf16: 0, deployed: 0 };
  for (const entry of entries) {
    const count = entry.shape.reduce((a, b) => a * b, 1);
    let raw: Buffer;
    try {
      raw = await ckpt.read(entry);
    } catch (cause) {
      throw new Error(`${entry.file}: reading tensor ${entry.name}`, { cause });
    }
    const quantized = opts.quantizeExperts && isExpertsInt8Weight(entry.name);
    const weight = quantized ? quantize(entry, raw) : { kind: 'f32' as const, data: toFloat32(raw, entry.dtype, count), shape: entry.shape };
    bytes.bf16 += count * 2;
    bytes.deployed += quantized ? int8WeightBytes(entry.shape[0]!, entry.shape[1]!) : count * 2;
    onTensor(entry.name, weight);
    bytesLoaded += entry.byteLength;
    if (opts.onProgress) {
      const elapsed = (now() - started) / 1000;
      const ratio = bytesTotal === 0 ? 1 : bytesLoaded / bytesTotal;
      const etaSeconds = elapsed > 0 && bytesLoaded > 0 ? (elapsed * (bytesTotal - bytesLoaded)) / bytesLoaded : undefined;
      opts.onProgress({ bytesLoaded, bytesTotal, ratio, etaSeconds, tensorName: entry.name });
    }
  }
  return bytes;
}
