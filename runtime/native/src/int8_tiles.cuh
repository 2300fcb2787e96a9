// The device layout of ExpertsInt8 weights (written by the quantizer, read by every int8 GEMM kernel).
//
// A weight [N, K] is stored in tiles of 16 rows × 64 columns (1 KiB), padded with zeros to
// Np = ⌈N/16⌉·16 rows and Kp = ⌈K/64⌉·64 columns, tile (r/16, k/64) at ((r/16)·Kp/64 + k/64)·1024: the
// tiles of 16 rows follow each other along K, so a warp that streams 16 rows reads one contiguous run.
// Inside a tile, the 16 bytes of row r at columns k … k+15 (k % 16 == 0) sit at
//     ((r % 16) / 8)·512 + ((r % 8)·4 + (k % 64)/16)·16,
// so that lane 4g + t of a warp finds rows g and g+8 (the rows of its mma A fragment) at columns 16t …
// 16t+15 in the two 512-byte halves: two fully coalesced 16-byte loads per lane and k-block.
// runtime/backends/cuda/int8-tiles.ts reads the layout back on the host.
#pragma once
#include <stddef.h>

namespace jb {

constexpr int kInt8TileRows = 16, kInt8TileCols = 64, kInt8TileBytes = kInt8TileRows * kInt8TileCols;

__host__ __device__ __forceinline__ int int8_padded_cols(int k) { return (k + kInt8TileCols - 1) / kInt8TileCols * kInt8TileCols; }
__host__ __device__ __forceinline__ int int8_padded_rows(int n) { return (n + kInt8TileRows - 1) / kInt8TileRows * kInt8TileRows; }

/** Byte offset of element (r, k) of an int8 weight whose padded width is `kp`. */
__host__ __device__ __forceinline__ size_t int8_tile_offset(int r, int k, int kp) {
  return ((size_t)(r >> 4) * (kp >> 6) + (k >> 6)) * kInt8TileBytes + ((r >> 3) & 1) * 512 + (((r & 7) << 2) + ((k >> 4) & 3)) * 16 + (k & 15);
}

}  // namespace jb
