import { tiledInt8Bytes, untileInt8 } from './int8-tiles.js';

describe('the tiled int8 weight layout (host side of int8_tiles.cuh)', () => {
  test('pads to 16 rows × 64 columns', () => {
    expect(tiledInt8Bytes(16, 64)).toBe(1024);
    expect(tiledInt8Bytes(14336, 4096)).toBe(14336 * 4096);
    expect(tiledInt8Bytes(112, 48)).toBe(112 * 64);
    expect(tiledInt8Bytes(17, 65)).toBe(32 * 128);
  });

  test('lane 4g + t finds rows g and g+8, columns 16t … 16t+15 of each k-block, in the two 512-byte halves', () => {
    // A 32 × 128 weight: two row groups × two k-blocks. Fill the tiled bytes with the lane rule and read it back.
    const rows = 32;
    const cols = 128;
    const tiled = new Int8Array(tiledInt8Bytes(rows, cols));
    const value = (r: number, k: number): number => ((r * 7 + k * 3) % 255) - 127;
    for (let group = 0; group < 2; group++) {
      for (let block = 0; block < 2; block++) {
        const tile = (group * 2 + block) * 1024;
        for (let lane = 0; lane < 32; lane++) {
          const g = lane >> 2;
          const t = lane & 3;
          for (let i = 0; i < 16; i++) {
            const k = block * 64 + t * 16 + i;
            tiled[tile + lane * 16 + i] = value(group * 16 + g, k);
            tiled[tile + 512 + lane * 16 + i] = value(group * 16 + g + 8, k);
          }
        }
      }
    }
    const rowMajor = untileInt8(tiled, rows, cols);
    for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) expect(rowMajor[r * cols + k]).toBe(value(r, k));
  });

  test('ragged shapes read back only the real rows and columns', () => {
    const tiled = new Int8Array(tiledInt8Bytes(3, 20)).fill(5);
    expect(untileInt8(tiled, 3, 20)).toEqual(new Int8Array(60).fill(5));
  });
});
