// Safetensors element types the loader accepts, and their conversion to fp32.

export type FloatDType = 'BF16' | 'F16' | 'F32';

export const BYTES_PER_ELEMENT: Record<FloatDType, number> = { BF16: 2, F16: 2, F32: 4 };

export function isFloatDType(dtype: string): dtype is FloatDType {
  return dtype === 'BF16' || dtype === 'F16' || dtype === 'F32';
}

/** Typed arrays use the host's byte order; safetensors is little-endian. */
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** IEEE half → number (exact: every fp16 value is an fp32 value). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * Decodes `count` elements starting at element `first` of little-endian `bytes` into out[0..count).
 * bf16 is the top half of an fp32, so it converts by a shift.
 */
export function decodeInto(bytes: Uint8Array, dtype: FloatDType, first: number, count: number, out: Float32Array): void {
  if (dtype === 'BF16' && LITTLE_ENDIAN_HOST && bytes.byteOffset % 2 === 0) {
    // Fast path: read the halves through an aligned 16-bit view instead of a DataView.
    const halves = new Uint16Array(bytes.buffer, bytes.byteOffset + first * 2, count);
    const bits = new Uint32Array(out.buffer, out.byteOffset, count);
    for (let i = 0; i < count; i++) bits[i] = halves[i]! << 16;
    return;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'F32') {
    for (let i = 0; i < count; i++) out[i] = view.getFloat32((first + i) * 4, true);
  } else if (dtype === 'BF16') {
    const bits = new Uint32Array(out.buffer, out.byteOffset, count);
    for (let i = 0; i < count; i++) bits[i] = view.getUint16((first + i) * 2, true) << 16;
  } else {
    for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16((first + i) * 2, true));
  }
}

export function toFloat32(bytes: Uint8Array, dtype: FloatDType, count: number): Float32Array {
  const out = new Float32Array(count);
  decodeInto(bytes, dtype, 0, count, out);
  return out;
}
