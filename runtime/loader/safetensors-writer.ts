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

/** fp32 values → IEEE half bytes, rounding to nearest even (normal range and subnormals; overflow → ±inf). */
export function f16Bytes(values: ArrayLike<number>): Uint8Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
    const a = Math.abs(v);
    if (Number.isNaN(v)) out[i] = 0x7e00;
    else if (a >= 65520) out[i] = sign | 0x7c00;
    else if (a < 2 ** -14) out[i] = sign | roundEven(a / 2 ** -24); // subnormal (may round up to the smallest normal)
    else {
      const exp = Math.floor(Math.log2(a));
      const e = a / 2 ** exp >= 2 ? exp + 1 : a / 2 ** exp < 1 ? exp - 1 : exp; // guard log2 rounding
      out[i] = sign | ((e + 15) << 10) + roundEven((a / 2 ** e - 1) * 1024); // a carry into the exponent is correct
    }
  }
  return new Uint8Array(out.buffer);
}

function roundEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
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
