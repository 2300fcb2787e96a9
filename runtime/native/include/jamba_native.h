// The C ABI of libjamba_cuda.so, called from TypeScript through koffi (runtime/backends/cuda/native.ts).
//
// Coarse by design: a forward step crosses this boundary once. The TypeScript backend records the
// step's ops into a program (an array of doubles) and hands it over with the step's host inputs in
// one call, jb_run, which launches every kernel of the step (or replays a captured CUDA graph).
// Everything else (allocation, uploads, quantization at load) happens outside steps.
//
// Program encoding: a sequence of ops, each [opcode, argc, args...]. Every argument is a double:
// device pointers (below 2^53 on x86-64, so exact), integers and floats alike. A tensor argument is
// five doubles: pointer, dtype (JB_DTYPE_*), rows, cols, row stride in elements. The argument lists
// below are the contract with runtime/backends/cuda/program.ts (checked by a test that parses this file).
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { JB_DTYPE_F32 = 0, JB_DTYPE_BF16 = 1, JB_DTYPE_I8 = 2, JB_DTYPE_I32 = 3, JB_DTYPE_F16 = 4 };

// Per-sequence step metadata, 8 int32 each: row start, row count, cached length, state slot,
// offset of its block table in the block-table section, context length (cached + rows), 0, 0.
enum { JB_META_ROW_START = 0, JB_META_NUM_ROWS, JB_META_CACHED, JB_META_SLOT, JB_META_BLOCKS, JB_META_CTX, JB_META_INTS = 8 };

// Sampling parameters per sampled row, 8 x 32 bits: temperature f32, top_p f32, top_k i32, min_p f32,
// seed u32, counter u32, logprobs i32 (-1 none), unused.
enum { JB_SAMPLE_PARAM_WORDS = 8, JB_MAX_TOP_LOGPROBS = 20 };

// Ops and their arguments (T = tensor: ptr, dtype, rows, cols, ld).
#define JB_OPS(X)                                                                                                 \
  X(0, MEMSET)     /* ptr, bytes, byte value                                                                   */ \
  X(1, CONVERT)    /* T src, dst ptr, dst dtype                       (dst contiguous)                        */ \
  X(2, EMBED)      /* table ptr, table dtype, vocab, hidden, ids ptr, rows, out ptr (f32)                     */ \
  X(3, RMSNORM)    /* T x, weight ptr (f32), eps, out ptr, out dtype                                          */ \
  X(4, GEMM)       /* T x (bf16), w ptr (bf16 [n,k]), n, bias ptr|0 (f32), out ptr, out dtype                 */ \
  X(5, ADD)        /* T dst, T src                                                                            */ \
  X(6, SILU_MUL)   /* T gate, T up, out ptr (bf16)                                                            */ \
  X(7, GATHER)     /* T x, rows ptr (i32), count, out ptr                                                     */ \
  X(8, ROUTER)     /* T logits (f32), k, experts out ptr (i32), weights out ptr (f32)                        */ \
  X(9, MOE)        /* T x (bf16), experts ptr, weights ptr, k, table ptr, experts, ffn, weight dtype,         */ \
                   /* align ptr, h ptr, partial ptr, partial bytes, out ptr (f32 [rows, hidden])             */ \
  X(10, INT8_GEMM) /* T x (bf16), q ptr (i8 [n,k]), scale ptr (f32), n, bias ptr|0, out ptr, out dtype        */ \
  X(11, ATTENTION) /* T q, T k, T v, cache k, cache v, block size, heads, kv heads, head dim, scale, meta,    */ \
                   /* seqs, row-seq ptr, block tables ptr, prefill tiles ptr, prefill tiles, decode seqs ptr, */ \
                   /* decode seqs, max splits, partial ptr, out ptr (bf16)                                    */ \
  X(12, CONV)      /* T x, weight ptr (f32 [di,k]), bias ptr|0, state ptr (bf16), d_conv, meta, seqs,         */ \
                   /* row-seq ptr, out ptr (bf16)                                                              */ \
  X(13, SCAN)      /* T x, T dt, negA ptr (f32), T b, T c, d ptr (f32), T z, state ptr (f32), d_state, meta,  */ \
                   /* seqs, decode seqs ptr, decode seqs, out ptr (bf16)                                        */ \
  X(14, SAMPLE)    /* logits ptr (f32 [rows, vocab]), rows, vocab, params ptr, out ptr                       */ \
  X(15, TIMER)     /* (none) the step's device time counts from here; eager runs only (benchmarks)           */ \
  X(16, ADD_RMSNORM) /* T dst, T src, weight ptr (f32), eps, out ptr, out dtype: dst += src, out = rmsnorm(dst) */ \
  X(17, RMSNORMS)  /* count (1-4), then per norm: T x, weight ptr (f32), eps, out ptr, out dtype; equal rows  */

#define JB_OP_ENUM(code, name) JB_OP_##name = code,
enum { JB_OPS(JB_OP_ENUM) JB_OP_COUNT };
#undef JB_OP_ENUM

// All functions return 0 on success, or -1 with a message for jb_last_error().
const char* jb_last_error(void);
int jb_init(int device);
/** out: free bytes, total bytes, multiprocessors, compute capability major, minor, L2 bytes. */
int jb_device_info(double* out);
int jb_device_count(void);
/** Device allocation; the pointer is written to *out. */
int jb_malloc(uint64_t bytes, double* out);
int jb_free(double ptr);
int jb_upload(double dst, const void* src, uint64_t bytes);
int jb_download(void* dst, double src, uint64_t bytes);
/** Waits for all work on the backend's stream. */
int jb_sync(void);
/** Converts count elements of src (f32, f16 or bf16) to dst in dst_dtype (bf16 or f32) on the device. */
int jb_convert(double dst, int dst_dtype, double src, int src_dtype, uint64_t count);
/** ExpertsInt8: quantizes a [rows, cols] matrix (src_dtype) per row into q (int8) and scale (f32). */
int jb_quantize_int8(double q, double scale, double src, int src_dtype, int rows, int cols);
/** Fills count bf16 values with N(0, std²)-ish numbers from (seed, index) (benchmarks' random weights). */
int jb_fill_random_bf16(double dst, uint64_t count, double std, uint32_t seed);
/**
 * Runs one program: uploads `payload_bytes` of host inputs to `payload_dev`, executes every op, then
 * downloads `result_bytes` from `result_dev` into `result` and waits. graph_key >= 0 names a program
 * that is the same whenever the key is (decode steps of one batch size): the first run captures a CUDA
 * graph, later runs replay it.
 */
int jb_run(const double* program, int length, const void* payload, uint64_t payload_bytes, double payload_dev, void* result,
           uint64_t result_bytes, double result_dev, int graph_key);
/**
 * The device's ceilings, measured: out[0] device-to-device copy GB/s (bytes read + written, a 4 GiB
 * buffer), out[1] bf16 GEMM TFLOP/s (8192³ through cuBLASLt, random data). For benchmark reports.
 */
int jb_measure_ceilings(double* out);
/** Drops every captured graph (after the pools they point into change). */
int jb_reset_graphs(void);
/**
 * 1 when jb_run with this key replays a captured graph, whatever program it is given (so the caller
 * need not record one); 0 otherwise, and always while ops are profiled (those runs are eager).
 */
int jb_has_graph(int graph_key);
/** Optional timing of the last jb_run in milliseconds (device events), for benchmarks. */
double jb_last_run_ms(void);
/**
 * With JAMBA_PROFILE_OPS=1 in the environment (graphs then stay off): out[2i], out[2i+1] = device ms and
 * calls of op code i since the last call, for every op code; resets the counts.
 */
int jb_op_profile(double* out);

#ifdef __cplusplus
}
#endif
