// Bindings to libjamba_cuda.so (runtime/native, C ABI in include/jamba_native.h) through koffi.
// koffi calls cost ~0.1 µs (measured, docs/adr/0002-cuda-backend.md); the only call inside a step is
// jb_run, made on a worker thread (koffi's async call) so the event loop keeps serving HTTP while the
// GPU works. Every call but jb_init and jb_device_count names a context; openContext binds one.
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const LIBRARY_NAME = 'libjamba_cuda.so';

/** The library's calls for one context (a device, its stream and graphs): see jb_init. */
export interface NativeLib {
  /** The context's id (a tensor-parallel group is made of ids). */
  readonly context: number;
  lastError(): string;
  deviceInfo(out: Float64Array): number;
  deviceCount(): number;
  malloc(bytes: number, out: Float64Array): number;
  free(ptr: number): number;
  upload(dst: number, src: ArrayBufferView, bytes: number): number;
  download(dst: ArrayBufferView, src: number, bytes: number): number;
  /** Page-locks the memory of `buf` (until hostUnregister) so that uploads from it are DMA transfers. */
  hostRegister(buf: ArrayBufferView): number;
  hostUnregister(buf: ArrayBufferView): number;
  sync(): number;
  convert(dst: number, dstDtype: number, src: number, srcDtype: number, count: number): number;
  quantizeInt8(q: number, scale: number, src: number, srcDtype: number, rows: number, cols: number): number;
  fillRandomBf16(dst: number, rows: number, cols: number, std: number, seed: number, fullCols: number, row0: number, col0: number): number;
  run(
    program: Float64Array, length: number, payload: Uint8Array, payloadBytes: number, payloadDev: number, result: Uint8Array,
    resultBytes: number, resultDev: number, graphKey: number,
  ): Promise<number>;
  resetGraphs(): number;
  hasGraph(graphKey: number): number;
  measureCeilings(out: Float64Array): number;
  opProfile(out: Float64Array): number;
  lastRunMs(): number;
  /** Leaves the context's tensor-parallel group (if any), then frees everything the context holds. */
  release(): number;
}

/** The library's C functions, each taking a context id first (include/jamba_native.h). */
interface RawLib {
  lastError(ctx: number): string;
  init(device: number): number;
  release(ctx: number): number;
  deviceInfo(ctx: number, out: Float64Array): number;
  deviceCount(): number;
  malloc(ctx: number, bytes: number, out: Float64Array): number;
  free(ctx: number, ptr: number): number;
  upload(ctx: number, dst: number, src: ArrayBufferView, bytes: number): number;
  download(ctx: number, dst: ArrayBufferView, src: number, bytes: number): number;
  hostRegister(ctx: number, ptr: ArrayBufferView, bytes: number): number;
  hostUnregister(ctx: number, ptr: ArrayBufferView): number;
  sync(ctx: number): number;
  convert(ctx: number, dst: number, dstDtype: number, src: number, srcDtype: number, count: number): number;
  quantizeInt8(ctx: number, q: number, scale: number, src: number, srcDtype: number, rows: number, cols: number): number;
  fillRandomBf16(ctx: number, dst: number, rows: number, cols: number, std: number, seed: number, fullCols: number, row0: number, col0: number): number;
  run: ((...args: unknown[]) => number) & { async: (...args: unknown[]) => void };
  resetGraphs(ctx: number): number;
  hasGraph(ctx: number, graphKey: number): number;
  measureCeilings(ctx: number, out: Float64Array): number;
  opProfile(ctx: number, out: Float64Array): number;
  lastRunMs(ctx: number): number;
  groupCreate(ctxs: Int32Array, size: number, exchangeBytes: number, flags: number): number;
  groupLeave(ctx: number): number;
}

/** Where the library is looked for: $JAMBA_NATIVE_LIB, then runtime/native/build/ from the source tree or dist/. */
export function libraryCandidates(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  const fromEnv = process.env['JAMBA_NATIVE_LIB'];
  const candidates = fromEnv ? [fromEnv] : [];
  // runtime/backends/cuda (sources) or dist/runtime/backends/cuda (built): the repository root is 3 or 4 up.
  for (const up of ['../../..', '../../../..']) candidates.push(resolve(here, up, 'runtime/native/build', LIBRARY_NAME));
  return candidates;
}

let loaded: RawLib | undefined;

async function load(): Promise<RawLib> {
  if (loaded) return loaded;
  const path = libraryCandidates().find((p) => existsSync(p));
  if (!path) {
    throw new Error(`the CUDA backend's native library ${LIBRARY_NAME} was not found (looked in ${libraryCandidates().join(', ')}); build it with 'make native' or set JAMBA_NATIVE_LIB`);
  }
  const koffi = (await import('koffi')).default;
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load(path);
  } catch (cause) {
    throw new Error(`cannot load ${path}: ${(cause as Error).message} (a CUDA 13 driver and libcublasLt.so.13 must be on the loader path)`, { cause });
  }
  loaded = {
    lastError: lib.func('const char *jb_last_error(int ctx)'),
    init: lib.func('int jb_init(int device)'),
    release: lib.func('int jb_release(int ctx)'),
    deviceInfo: lib.func('int jb_device_info(int ctx, double *out)'),
    deviceCount: lib.func('int jb_device_count(void)'),
    malloc: lib.func('int jb_malloc(int ctx, uint64_t bytes, double *out)'),
    free: lib.func('int jb_free(int ctx, double ptr)'),
    upload: lib.func('int jb_upload(int ctx, double dst, const void *src, uint64_t bytes)'),
    download: lib.func('int jb_download(int ctx, void *dst, double src, uint64_t bytes)'),
    hostRegister: lib.func('int jb_host_register(int ctx, void *ptr, uint64_t bytes)'), // void *: koffi passes the buffer's own memory
    hostUnregister: lib.func('int jb_host_unregister(int ctx, void *ptr)'),
    sync: lib.func('int jb_sync(int ctx)'),
    convert: lib.func('int jb_convert(int ctx, double dst, int dst_dtype, double src, int src_dtype, uint64_t count)'),
    quantizeInt8: lib.func('int jb_quantize_int8(int ctx, double q, double scale, double src, int src_dtype, int rows, int cols)'),
    fillRandomBf16: lib.func('int jb_fill_random_bf16(int ctx, double dst, uint64_t rows, uint64_t cols, double std, uint32_t seed, uint64_t full_cols, uint64_t row0, uint64_t col0)'),
    run: lib.func(
      'int jb_run(int ctx, const double *program, int length, const void *payload, uint64_t payload_bytes, double payload_dev, void *result, uint64_t result_bytes, double result_dev, int graph_key)',
    ),
    resetGraphs: lib.func('int jb_reset_graphs(int ctx)'),
    hasGraph: lib.func('int jb_has_graph(int ctx, int graph_key)'),
    measureCeilings: lib.func('int jb_measure_ceilings(int ctx, double *out)'),
    opProfile: lib.func('int jb_op_profile(int ctx, double *out)'),
    lastRunMs: lib.func('double jb_last_run_ms(int ctx)'),
    groupCreate: lib.func('int jb_group_create(const int *ctxs, int size, uint64_t exchange_bytes, int flags)'),
    groupLeave: lib.func('int jb_group_leave(int ctx)'),
  } as RawLib;
  return loaded;
}

export interface ContextOptions {
  /**
   * Run steps on the calling thread (a tensor-parallel rank's worker, whose thread has nothing else to
   * do) instead of koffi's thread pool: a group's ranks wait for each other inside their steps, and N
   * of them must never queue behind each other in a pool of fewer threads.
   */
  blockingRuns?: boolean;
}

/** A new context on `device`, its calls bound to it. */
export async function openContext(device: number, opts: ContextOptions = {}): Promise<NativeLib> {
  const raw = await load();
  const ctx = raw.init(device);
  if (ctx < 0) throw new Error(`cuda: initialising device ${device}: ${raw.lastError(-1)}`);
  return {
    context: ctx,
    lastError: () => raw.lastError(ctx),
    deviceInfo: (out) => raw.deviceInfo(ctx, out),
    deviceCount: () => raw.deviceCount(),
    malloc: (bytes, out) => raw.malloc(ctx, bytes, out),
    free: (ptr) => raw.free(ctx, ptr),
    upload: (dst, src, bytes) => raw.upload(ctx, dst, src, bytes),
    download: (dst, src, bytes) => raw.download(ctx, dst, src, bytes),
    hostRegister: (buf) => raw.hostRegister(ctx, buf, buf.byteLength),
    hostUnregister: (buf) => raw.hostUnregister(ctx, buf),
    sync: () => raw.sync(ctx),
    convert: (dst, dstDtype, src, srcDtype, count) => raw.convert(ctx, dst, dstDtype, src, srcDtype, count),
    quantizeInt8: (q, scale, src, srcDtype, rows, cols) => raw.quantizeInt8(ctx, q, scale, src, srcDtype, rows, cols),
    fillRandomBf16: (dst, rows, cols, std, seed, fullCols, row0, col0) => raw.fillRandomBf16(ctx, dst, rows, cols, std, seed, fullCols, row0, col0),
    run: (...args) =>
      opts.blockingRuns
        ? Promise.resolve(raw.run(ctx, ...args))
        : new Promise<number>((resolveRun, reject) => {
            raw.run.async(ctx, ...args, (error: unknown, rc: number) => (error ? reject(error as Error) : resolveRun(rc)));
          }),
    resetGraphs: () => raw.resetGraphs(ctx),
    hasGraph: (key) => raw.hasGraph(ctx, key),
    measureCeilings: (out) => raw.measureCeilings(ctx, out),
    opProfile: (out) => raw.opProfile(ctx, out),
    lastRunMs: () => raw.lastRunMs(ctx),
    release: () => (raw.groupLeave(ctx) !== 0 ? -1 : raw.release(ctx)),
  };
}

export interface GroupOptions {
  /** NCCL for large all-reduces where every rank has its own device. */
  nccl: boolean;
  /** Device-side barriers even for ranks sharing a device (a test of the kernels; see jb_group_create). */
  deviceSync?: boolean;
}

/** Makes the contexts ranks 0..n-1 of one tensor-parallel group (jb_group_create), with exchange buffers of `exchangeBytes`. */
export async function createGroup(contexts: readonly number[], exchangeBytes: number, opts: GroupOptions): Promise<void> {
  const raw = await load();
  const flags = (opts.nccl ? 1 : 0) | (opts.deviceSync ? 2 : 0); // JB_GROUP_NCCL, JB_GROUP_DEVICE_SYNC
  if (raw.groupCreate(Int32Array.from(contexts), contexts.length, exchangeBytes, flags) !== 0) {
    throw new Error(`cuda: making a tensor-parallel group of contexts ${contexts.join(', ')}: ${raw.lastError(-1)}`);
  }
}

/** Visible CUDA devices (0 when the library cannot load or sees none). */
export async function deviceCount(): Promise<number> {
  try {
    return (await load()).deviceCount();
  } catch {
    return 0;
  }
}

/** Throws with the library's message when a call failed. */
export function check(lib: NativeLib, rc: number, what: string): void {
  if (rc !== 0) throw new Error(`cuda: ${what}: ${lib.lastError()}`);
}

/** Whether the CUDA backend can run here: the library loads and sees a device. Never throws. */
export async function probeCuda(): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    const lib = await load();
    const count = lib.deviceCount();
    if (count < 1) return { ok: false, reason: `no CUDA device is visible (${lib.lastError(-1) || 'count 0'})` };
    return { ok: true };
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
}
