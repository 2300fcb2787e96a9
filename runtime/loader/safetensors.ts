// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data, with
// offsets relative to the end of the header. Only the header is read here; tensor data is read
// one tensor at a time by the checkpoint reader.
import { open } from 'node:fs/promises';
import { BYTES_PER_ELEMENT, type FloatDType, isFloatDType } from './dtype.js';

export interface TensorEntry {
  name: string;
  file: string;
  dtype: FloatDType;
  shape: number[];
  /** Absolute byte offset of the data in the file. */
  offset: number;
  byteLength: number;
}

/** A header larger than this is corrupt (real headers are a few hundred KiB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Reads and validates the header of one safetensors file. Errors name the file (and the tensor). */
export async function readSafetensorsHeader(file: string): Promise<TensorEntry[]> {
  const handle = await open(file, 'r').catch((cause: unknown) => {
    throw new Error(`${file}: cannot open`, { cause });
  });
  try {
    const fileSize = (await handle.stat()).size;
    if (fileSize < 8) throw new Error(`${file}: truncated: ${fileSize} bytes, shorter than the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    await handle.read(lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > MAX_HEADER_BYTES || 8 + headerLen > fileSize) {
      throw new Error(`${file}: corrupt header: header length ${headerLen} does not fit in the file of ${fileSize} bytes`);
    }
    const headerBuf = Buffer.alloc(headerLen);
    await handle.read(headerBuf, 0, headerLen, 8);
    let header: unknown;
    try {
      header = JSON.parse(headerBuf.toString('utf8'));
    } catch (cause) {
      throw new Error(`${file}: corrupt header: not valid JSON`, { cause });
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) {
      throw new Error(`${file}: corrupt header: not a JSON object`);
    }
    const dataStart = 8 + headerLen;
    const entries: TensorEntry[] = [];
    for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') continue;
      entries.push(parseEntry(file, name, value, dataStart, fileSize));
    }
    return entries;
  } finally {
    await handle.close();
  }
}

function parseEntry(file: string, name: string, value: unknown, dataStart: number, fileSize: number): TensorEntry {
  const where = `${file}: tensor ${name}`;
  const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
  if (typeof info !== 'object' || info === null) throw new Error(`${where}: corrupt header entry`);
  const { dtype, shape, data_offsets: offsets } = info;
  if (typeof dtype !== 'string') throw new Error(`${where}: corrupt header entry: no dtype`);
  if (!isFloatDType(dtype)) throw new Error(`${where}: unsupported dtype ${dtype} (supported: BF16, F16, F32)`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`${where}: corrupt header entry: bad shape ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
    throw new Error(`${where}: corrupt header entry: bad data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  const byteLength = numel(shape as number[]) * BYTES_PER_ELEMENT[dtype];
  if (end - begin !== byteLength) {
    throw new Error(`${where}: corrupt header entry: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, shape [${shape.join(', ')}] of ${dtype} needs ${byteLength}`);
  }
  if (dataStart + end > fileSize) {
    throw new Error(`${where}: truncated file: data ends at byte ${dataStart + end}, the file has ${fileSize} bytes`);
  }
  return { name, file, dtype, shape: shape as number[], offset: dataStart + begin, byteLength };
}
