// Writes safetensors files: used by tests (fixtures made on the fly, and broken files for the
// loader's error cases) and by tools that emit small checkpoints.
import { writeFile } from 'node:fs/promises';
import type { FloatDType } from './dtype.js';

export interface TensorToWrite {
  dtype: FloatDType | string;
  shape: number[];
  /** Raw little-endian element bytes. */
  data: Uint8Array;
}

/** fp32 values → bf16 bytes, rounding to nearest even (as torch's .to(torch.bfloat16)). */
export function bf16Bytes(values: ArrayLike<number>): Uint8Array {
  const f = new Float32Array(values);
  const bits = new Uint32Array(f.buffer);
  const out = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) {
    const b = bits[i]!;
    out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return new Uint8Array(out.buffer);
}

export function f32Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

export function encodeSafetensors(tensors: Record<string, TensorToWrite>): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // the format pads the header to 8 bytes
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  return Buffer.concat([len, headerBytes, ...Object.values(tensors).map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))]);
}

export async function writeSafetensors(file: string, tensors: Record<string, TensorToWrite>): Promise<void> {
  await writeFile(file, encodeSafetensors(tensors));
}
