// Streams a checkpoint's tensors, one at a time, as raw checkpoint bytes handed to `onTensor` (which
// places them on a backend: converted, quantized or as they are). Validates the whole checkpoint
// against the expected tensor specs before reading any data. No fp32 copy is made here: a GPU backend
// receives bf16 bytes straight from the file.
import type { StagingMemory } from '../backends/backend.js';
import type { LoadProgress } from '../engine/model-runner.js';
import type { Selection } from '../models/sharding.js';
import { type Checkpoint, plainBytes } from './checkpoint.js';
import { BYTES_PER_ELEMENT, type FloatDType } from './dtype.js';

export interface ExpectedTensor {
  name: string;
  shape: number[];
}

/** One tensor as stored in the checkpoint (little-endian). */
export interface RawTensor {
  dtype: FloatDType;
  bytes: Uint8Array;
  shape: number[];
}

/** Where the load's time went (the loading benchmark's breakdown). */
export interface LoadStats {
  bytes: number;
  seconds: number;
  /** Time spent waiting for the file system (reads not hidden behind placing the previous tensor). */
  readWaitSeconds: number;
  /** Time spent placing tensors: conversion, upload to the device, quantization. */
  placeSeconds: number;
}

/** What to read of a tensor (a tensor-parallel rank's shard); undefined: all of it. */
export type SelectTensor = (name: string, shape: number[], bytesPerElement: number) => Selection | undefined;

export interface LoadWeightsOptions {
  /** Read only part of each tensor (see models/sharding.ts). */
  select?: SelectTensor;
  /** Checkpoint tensors that may be present and are skipped. */
  ignorable?: ReadonlySet<string>;
  onProgress?: (p: LoadProgress) => void;
  /** Injected clock (ms) for the ETA. */
  now?: () => number;
  /** Bytes of the coming tensors read while one is placed (default READ_AHEAD_BYTES). */
  readAheadBytes?: number;
  /**
   * Where to read tensors to (the backend's staging memory, STAGING_BYTES of it); each buffer is given
   * back once `onTensor` returns, so `onTensor` must not keep the bytes. Plain memory when it has none free.
   */
  staging?: Pick<StagingMemory, 'take' | 'give'>;
}

const MAX_LISTED = 8;
/** Bytes of the coming tensors read while one is placed (beyond the next one, which is always read). */
export const READ_AHEAD_BYTES = 1024 * 1024 * 1024;
/**
 * Staging memory that holds the read-ahead, the tensor being placed and the next one in most cases
 * (a tensor that finds no room is read into plain memory).
 */
export const STAGING_BYTES = READ_AHEAD_BYTES + 256 * 1024 * 1024;

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

export async function loadWeights(
  ckpt: Checkpoint,
  expected: ExpectedTensor[],
  opts: LoadWeightsOptions,
  onTensor: (name: string, tensor: RawTensor) => void,
): Promise<LoadStats> {
  checkTensors(ckpt, expected, opts.ignorable);
  const now = opts.now ?? Date.now;
  // Read in file order so each shard is streamed front to back.
  const entries = expected
    .map((spec) => ckpt.tensors.get(spec.name)!)
    .sort((a, b) => (a.file === b.file ? a.offset - b.offset : a.file < b.file ? -1 : 1));
  const selections = entries.map((e) => opts.select?.(e.name, e.shape, BYTES_PER_ELEMENT[e.dtype]));
  const bytesOf = (i: number): number => selections[i]?.parts.reduce((a, [, n]) => a + n, 0) ?? entries[i]!.byteLength;
  const bytesTotal = entries.reduce((sum, _, i) => sum + bytesOf(i), 0);
  const started = now();
  let bytesLoaded = 0;
  const staging = opts.staging;
  const allocate = (bytes: number): Uint8Array => staging?.take(bytes) ?? plainBytes(bytes);
  const read = (i: number): Promise<Uint8Array> | undefined => {
    const entry = entries[i];
    if (!entry) return undefined;
    const sel = selections[i];
    const reading = !sel
      ? ckpt.read(entry, allocate)
      : sel.zeros
        ? Promise.resolve(Buffer.alloc(sel.shape.reduce((a, b) => a * b, 1) * BYTES_PER_ELEMENT[entry.dtype]))
        : ckpt.readParts(entry, sel.parts, allocate);
    const pending = reading.catch((cause: unknown) => {
      throw new Error(`${entry.file}: reading tensor ${entry.name}`, { cause });
    });
    pending.catch(() => {}); // awaited below; this only keeps an early rejection from being "unhandled"
    return pending;
  };
  // Read-ahead of up to READ_AHEAD_BYTES (and at least the next tensor): the file system reads the
  // coming tensors while this one is placed (converted, uploaded or quantized), so disk and device work
  // overlap, and the reads of small tensors overlap each other.
  const readAheadBytes = opts.readAheadBytes ?? READ_AHEAD_BYTES;
  const pending: (Promise<Uint8Array> | undefined)[] = [];
  let issued = 0;
  let bytesAhead = 0;
  const readAhead = (from: number): void => {
    while (issued < entries.length && (issued <= from + 1 || bytesAhead + bytesOf(issued) <= readAheadBytes)) {
      bytesAhead += bytesOf(issued);
      pending[issued] = read(issued);
      issued++;
    }
  };
  readAhead(-1);
  const clock = (): number => performance.now() / 1000;
  const t0 = clock();
  let readWaitSeconds = 0;
  let placeSeconds = 0;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    const waitStart = clock();
    const raw = await pending[i]!;
    pending[i] = undefined;
    bytesAhead -= bytesOf(i);
    readWaitSeconds += clock() - waitStart;
    readAhead(i);
    const placeStart = clock();
    onTensor(entry.name, { dtype: entry.dtype, bytes: raw, shape: selections[i]?.shape ?? entry.shape });
    staging?.give(raw);
    placeSeconds += clock() - placeStart;
    bytesLoaded += bytesOf(i);
    if (opts.onProgress) {
      const elapsed = (now() - started) / 1000;
      const ratio = bytesTotal === 0 ? 1 : bytesLoaded / bytesTotal;
      const etaSeconds = elapsed > 0 && bytesLoaded > 0 ? (elapsed * (bytesTotal - bytesLoaded)) / bytesLoaded : undefined;
      opts.onProgress({ bytesLoaded, bytesTotal, ratio, etaSeconds, tensorName: entry.name });
    }
  }
  return { bytes: bytesTotal, seconds: clock() - t0, readWaitSeconds, placeSeconds };
}
