// Bindings to libjamba_cuda.so (runtime/native, C ABI in include/jamba_native.h) through koffi.
// koffi calls cost ~0.1 µs (measured, docs/adr/0002-cuda-backend.md); the only call inside a step is
// jb_run, made on a worker thread (koffi's async call) so the event loop keeps serving HTTP while the
// GPU works.
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const LIBRARY_NAME = 'libjamba_cuda.so';

export interface NativeLib {
  lastError(): string;
  init(device: number): number;
  deviceInfo(out: Float64Array): number;
  deviceCount(): number;
  malloc(bytes: number, out: Float64Array): number;
  free(ptr: number): number;
  upload(dst: number, src: ArrayBufferView, bytes: number): number;
  download(dst: ArrayBufferView, src: number, bytes: number): number;
  sync(): number;
  convert(dst: number, dstDtype: number, src: number, srcDtype: number, count: number): number;
  quantizeInt8(q: number, scale: number, src: number, srcDtype: number, rows: number, cols: number): number;
  fillRandomBf16(dst: number, count: number, std: number, seed: number): number;
  run(
    program: Float64Array, length: number, payload: Uint8Array, payloadBytes: number, payloadDev: number, result: Uint8Array,
    resultBytes: number, resultDev: number, graphKey: number,
  ): Promise<number>;
  resetGraphs(): number;
  hasGraph(graphKey: number): number;
  measureCeilings(out: Float64Array): number;
  opProfile(out: Float64Array): number;
  lastRunMs(): number;
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

let loaded: NativeLib | undefined;

async function load(): Promise<NativeLib> {
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
  const runFn = lib.func('int jb_run(const double *program, int length, const void *payload, uint64_t payload_bytes, double payload_dev, void *result, uint64_t result_bytes, double result_dev, int graph_key)');
  loaded = {
    lastError: lib.func('const char *jb_last_error(void)'),
    init: lib.func('int jb_init(int device)'),
    deviceInfo: lib.func('int jb_device_info(double *out)'),
    deviceCount: lib.func('int jb_device_count(void)'),
    malloc: lib.func('int jb_malloc(uint64_t bytes, double *out)'),
    free: lib.func('int jb_free(double ptr)'),
    upload: lib.func('int jb_upload(double dst, const void *src, uint64_t bytes)'),
    download: lib.func('int jb_download(void *dst, double src, uint64_t bytes)'),
    sync: lib.func('int jb_sync(void)'),
    convert: lib.func('int jb_convert(double dst, int dst_dtype, double src, int src_dtype, uint64_t count)'),
    quantizeInt8: lib.func('int jb_quantize_int8(double q, double scale, double src, int src_dtype, int rows, int cols)'),
    fillRandomBf16: lib.func('int jb_fill_random_bf16(double dst, uint64_t count, double std, uint32_t seed)'),
    run: (...args) =>
      new Promise<number>((resolveRun, reject) => {
        runFn.async(...args, (error: unknown, rc: number) => (error ? reject(error as Error) : resolveRun(rc)));
      }),
    resetGraphs: lib.func('int jb_reset_graphs(void)'),
    hasGraph: lib.func('int jb_has_graph(int graph_key)'),
    measureCeilings: lib.func('int jb_measure_ceilings(double *out)'),
    opProfile: lib.func('int jb_op_profile(double *out)'),
    lastRunMs: lib.func('double jb_last_run_ms(void)'),
  };
  return loaded;
}

/** Throws with the library's message when a call failed. */
export function check(lib: NativeLib, rc: number, what: string): void {
  if (rc !== 0) throw new Error(`cuda: ${what}: ${lib.lastError()}`);
}

export async function openNative(): Promise<NativeLib> {
  return load();
}

/** Whether the CUDA backend can run here: the library loads and sees a device. Never throws. */
export async function probeCuda(): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    const lib = await load();
    const count = lib.deviceCount();
    if (count < 1) return { ok: false, reason: `no CUDA device is visible (${lib.lastError() || 'count 0'})` };
    return { ok: true };
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
}
