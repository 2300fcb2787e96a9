// The C ABI of libjamba_cuda.so, called from TypeScript through koffi (runtime/backends/cuda/native.ts).
//
// Coarse by design: a forward step crosses this boundary once. The TypeScript backend records the
// step's ops into a program (an array of doubles) and hands it over with the step's host inputs in
// one call, jb_run, which launches every kernel of the step (or replays a captured CUDA graph).
// Everything else (allocation, uploads, quantization at load) happens outside steps.
//
// Contexts: jb_init(device) returns a context id, which every other call takes first. A process may
// hold several (a tensor-parallel rank each), used concurrently from different threads; each has its
// own stream, graphs and handles. Ranks of a group (jb_group_create) sum and gather through the
// ALL_REDUCE and ALL_GATHER ops of their programs.
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
  X(2, EMBED)      /* table ptr, table dtype, vocab, hidden, ids ptr, rows, out ptr (f32), first id            */ \
                   /* (the table holds ids [first, first + vocab); other ids embed to zeros)                 */ \
  X(3, RMSNORM)    /* T x, weight ptr (f32), eps, out ptr, out dtype                                          */ \
  X(4, GEMM)       /* T x (bf16), w ptr (bf16 [n,k]), n, bias ptr|0 (f32), out ptr, out dtype                 */ \
  X(5, ADD)        /* T dst, T src                                                                            */ \
  X(6, SILU_MUL)   /* T gate, T up, out ptr (bf16)                                                            */ \
  X(7, GATHER)     /* T x, rows ptr (i32), count, out ptr                                                     */ \
  X(8, ROUTER)     /* T logits (f32), k, experts out ptr (i32), weights out ptr (f32)                        */ \
  X(9, MOE)        /* T x (bf16), experts ptr, weights ptr, k, table ptr, experts, ffn, weight dtype,         */ \
                   /* align ptr, h ptr, partial ptr, partial bytes, out ptr (f32 [rows, hidden]);             */ \
                   /* h holds pairs x ffn x 2 bytes, then rows x hidden x 2 (fp16 x), then f32 scales: rows,  */ \
                   /* then pairs x ceil(ffn / 64)                                                              */ \
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
  X(17, RMSNORMS)  /* count (1-4), then per norm: T x, weight ptr (f32), eps, out ptr, out dtype; equal rows  */ \
  X(18, ALL_REDUCE) /* T x (f32 or bf16, contiguous): x = sum over the group's ranks, in place, same on all   */ \
  X(19, ALL_GATHER) /* T x (f32, contiguous [rows, cols]), out ptr: [rows, ranks·cols], rank r's at column r·cols */

#define JB_OP_ENUM(code, name) JB_OP_##name = code,
enum { JB_OPS(JB_OP_ENUM) JB_OP_COUNT };
#undef JB_OP_ENUM

// All functions return 0 on success (jb_init: a context id), or -1 with a message for jb_last_error.
/** The last error of a call with this context (-1: of calls made without one, such as jb_init). */
const char* jb_last_error(int ctx);
/** A new context on `device`: its id, or -1. */
int jb_init(int device);
/** Frees everything the context holds (memory, graphs, stream, handles); its id is not reused. */
int jb_release(int ctx);
/** out: free bytes, total bytes, multiprocessors, compute capability major, minor, L2 bytes, bytes this context allocated, device. */
int jb_device_info(int ctx, double* out);
int jb_device_count(void);
/** Device allocation; the pointer is written to *out. */
int jb_malloc(int ctx, uint64_t bytes, double* out);
int jb_free(int ctx, double ptr);
int jb_upload(int ctx, double dst, const void* src, uint64_t bytes);
int jb_download(int ctx, void* dst, double src, uint64_t bytes);
/** Page-locks host memory (the loader's staging buffers), so that uploads from it go at the bus's rate. */
int jb_host_register(int ctx, const void* ptr, uint64_t bytes);
int jb_host_unregister(int ctx, const void* ptr);
/** Waits for all work on the context's stream. */
int jb_sync(int ctx);
/** Converts count elements of src (f32, f16 or bf16) to dst in dst_dtype (bf16 or f32) on the device. */
int jb_convert(int ctx, double dst, int dst_dtype, double src, int src_dtype, uint64_t count);
/** ExpertsInt8: quantizes a [rows, cols] matrix (src_dtype) per row into q (int8) and scale (f32). */
int jb_quantize_int8(int ctx, double q, double scale, double src, int src_dtype, int rows, int cols);
/**
 * Fills a [rows, cols] bf16 matrix with N(0, std²)-ish numbers from (seed, index), where the index is
 * that of element (row0 + r, col0 + c) in a full matrix of full_cols columns (benchmarks' random
 * weights; a tensor-parallel rank makes its shard of the same full matrix).
 */
int jb_fill_random_bf16(int ctx, double dst, uint64_t rows, uint64_t cols, double std, uint32_t seed, uint64_t full_cols, uint64_t row0, uint64_t col0);
/**
 * Runs one program: uploads `payload_bytes` of host inputs to `payload_dev`, executes every op, then
 * downloads `result_bytes` from `result_dev` into `result` and waits. graph_key >= 0 names a program
 * that is the same whenever the key is (decode steps of one batch size): the first run captures a CUDA
 * graph, later runs replay it. The ranks of a group must run their programs concurrently (their
 * collectives wait for each other on the device).
 */
int jb_run(int ctx, const double* program, int length, const void* payload, uint64_t payload_bytes, double payload_dev, void* result,
           uint64_t result_bytes, double result_dev, int graph_key);
/**
 * The device's ceilings, measured: out[0] device-to-device copy GB/s (bytes read + written, a 4 GiB
 * buffer), out[1] bf16 GEMM TFLOP/s (8192³ through cuBLASLt, random data). For benchmark reports.
 */
int jb_measure_ceilings(int ctx, double* out);
/** Drops every captured graph (after the pools they point into change). */
int jb_reset_graphs(int ctx);
/**
 * 1 when jb_run with this key replays a captured graph, whatever program it is given (so the caller
 * need not record one); 0 otherwise, and always while ops are profiled (those runs are eager).
 */
int jb_has_graph(int ctx, int graph_key);
/** Optional timing of the last jb_run in milliseconds (device events), for benchmarks. */
double jb_last_run_ms(int ctx);
/**
 * With JAMBA_PROFILE_OPS=1 in the environment (graphs then stay off): out[2i], out[2i+1] = device ms and
 * calls of op code i since the last call, for every op code; resets the counts.
 */
int jb_op_profile(int ctx, double* out);
enum { JB_GROUP_NCCL = 1, JB_GROUP_DEVICE_SYNC = 2 };
/**
 * Makes contexts ctxs[0..size) ranks 0..size-1 of one tensor-parallel group (at most 8), each with an
 * exchange buffer of 2 × `exchange_bytes`. A collective is a kernel per rank that reads the other
 * ranks' buffers directly (peer access over NVLink). Ranks on distinct devices meet at a barrier on
 * the devices; with JB_GROUP_NCCL, all-reduces of at least JAMBA_NCCL_MIN_BYTES (default 1 MiB) go
 * through NCCL instead (libnccl.so.2, or $JAMBA_NCCL_LIB, loaded here). Ranks sharing a device (tests)
 * meet on the host between a publishing and a combining launch, and run without graphs, unless
 * JB_GROUP_DEVICE_SYNC asks for the device barrier (safe only while no rank's host calls wait for the
 * device: a test of the kernels). A rank that does not arrive within JAMBA_COLLECTIVE_TIMEOUT_MS
 * (default 120000) fails the others' step.
 */
int jb_group_create(const int* ctxs, int size, uint64_t exchange_bytes, int flags);
/** Takes the context out of its group (freeing its buffers); the last rank to leave frees the group. */
int jb_group_leave(int ctx);

#ifdef __cplusplus
}
#endif
