// Tensor-parallel collectives between the contexts of one process (docs/adr/0003-tensor-parallelism.md):
// every rank's ALL_REDUCE / ALL_GATHER op is one kernel on its own stream that reads the other ranks'
// exchange buffers directly (one process owns every rank, so their device pointers are valid
// everywhere: peer access over NVLink, or the same memory when ranks share a device in tests). NCCL
// takes the large all-reduces when every rank has its own device.
//
// The peer kernels. Every launch has the same grid, so block b of every rank takes part in every
// collective and keeps a generation count of its own. Block b copies its chunk of x into its rank's
// buffer (the half of the generation's parity), publishes the generation to each rank's flag for
// (b, this rank), waits until every rank has published it into its own flags, then reads the chunk
// from every buffer. Sums run in rank order in fp32, so every rank gets the same bits (what keeps
// their sampling and state in step). Two halves make one barrier per collective enough: a rank writes
// a half again only two generations later, after every rank has passed the barrier between, which
// each passes only once its previous kernel, and so its reads of that half, has completed.
#include <dlfcn.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "context.cuh"

namespace jb {
namespace {

constexpr int kMaxRanks = 8;
constexpr int kBlocks = 16;  // small: ranks sharing a device must all fit on it while they wait
constexpr int kThreads = 512;
constexpr int kFlagWords = kBlocks * kMaxRanks + kBlocks;  // arrivals [block][rank], then a counter per block

struct PeerView {
  float* bufs[kMaxRanks];
  uint64_t* flags[kMaxRanks];
};

// --- NCCL, loaded when a group asks for it (so one GPU needs no libnccl) ----------------------------
// The few entry points used, declared from NCCL's stable C API (nccl.h): results are ints, 0 success.
using NcclComm = void*;
enum { kNcclFloat32 = 7, kNcclBfloat16 = 9, kNcclSum = 0 };
struct Nccl {
  void* lib = nullptr;
  int (*comm_init_all)(NcclComm* comms, int ndev, const int* devices) = nullptr;
  int (*all_reduce)(const void* send, void* recv, size_t count, int dtype, int op, NcclComm comm, cudaStream_t stream) = nullptr;
  int (*comm_destroy)(NcclComm comm) = nullptr;
  const char* (*error_string)(int result) = nullptr;
};

int load_nccl(Nccl& n) {
  if (n.lib) return 0;
  const char* path = std::getenv("JAMBA_NCCL_LIB");
  void* lib = dlopen(path && *path ? path : "libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
  if (!lib) return fail(std::string("loading NCCL: ") + dlerror() + " (put libnccl.so.2 on the loader path or set JAMBA_NCCL_LIB)");
  n.comm_init_all = reinterpret_cast<decltype(n.comm_init_all)>(dlsym(lib, "ncclCommInitAll"));
  n.all_reduce = reinterpret_cast<decltype(n.all_reduce)>(dlsym(lib, "ncclAllReduce"));
  n.comm_destroy = reinterpret_cast<decltype(n.comm_destroy)>(dlsym(lib, "ncclCommDestroy"));
  n.error_string = reinterpret_cast<decltype(n.error_string)>(dlsym(lib, "ncclGetErrorString"));
  if (!n.comm_init_all || !n.all_reduce || !n.comm_destroy || !n.error_string) {
    dlclose(lib);
    return fail("loading NCCL: the library lacks ncclCommInitAll, ncclAllReduce, ncclCommDestroy or ncclGetErrorString");
  }
  n.lib = lib;
  return 0;
}

Nccl g_nccl;

int nccl_check(int rc, const char* what) { return rc == 0 ? 0 : fail(std::string(what) + ": " + g_nccl.error_string(rc)); }

// --- flags ------------------------------------------------------------------------------------------

__device__ __forceinline__ void store_release(uint64_t* p, uint64_t v) { asm volatile("st.release.sys.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory"); }

__device__ __forceinline__ uint64_t load_acquire(const uint64_t* p) {
  uint64_t v;
  asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}

/** This block's next generation (its count of collectives), for every thread. */
__device__ uint64_t next_generation(const PeerView& v, int rank) {
  __shared__ uint64_t gen;
  if (threadIdx.x == 0) gen = ++v.flags[rank][kBlocks * kMaxRanks + blockIdx.x];  // only this block touches its counter
  __syncthreads();
  return gen;
}

__device__ __forceinline__ uint64_t global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

/**
 * Publishes generation g to every rank's flag for (this block, this rank), then waits for every rank's.
 * A rank that has not arrived after `timeout_ns` (it failed, or the ranks' programs differ) stops the
 * kernel with a trap: the step fails with a launch error instead of hanging the GPU.
 */
__device__ void arrive_and_wait(const PeerView& v, int rank, int size, uint64_t g, uint64_t timeout_ns) {
  __syncthreads();  // the block's writes into the buffer come before its arrival
  if (threadIdx.x < size) {
    __threadfence_system();
    store_release(v.flags[threadIdx.x] + blockIdx.x * kMaxRanks + rank, g);
    const uint64_t* mine = v.flags[rank] + blockIdx.x * kMaxRanks + threadIdx.x;
    const uint64_t since = global_ns();
    while (load_acquire(mine) < g) {
      if (global_ns() - since > timeout_ns) {
        printf("jamba collective: rank %d, block %d: rank %d did not arrive at generation %llu within %llu ms\n", rank, blockIdx.x, threadIdx.x,
               static_cast<unsigned long long>(g), static_cast<unsigned long long>(timeout_ns / 1000000));
        __trap();
      }
    }
  }
  __syncthreads();
}

/** This block's share [begin, end) of `count` elements, shifted by `offset`. */
__device__ __forceinline__ void block_chunk(int64_t offset, int64_t count, int64_t& begin, int64_t& end) {
  const int64_t per = (count + gridDim.x - 1) / gridDim.x;
  begin = offset + min(count, per * blockIdx.x);
  end = offset + min(count, per * (blockIdx.x + 1));
}

/** One launch's part of a collective: which elements, which ranks, and how the ranks meet. */
struct Piece {
  int64_t offset;  // of the tensor's first element in this piece
  int64_t count;   // elements in the piece (at most half_floats)
  int rank;
  int size;
  int64_t half_floats;
  // Device-synchronized (-1): the kernel publishes, meets the other ranks at a device barrier, then
  // combines. Host-synchronized (0 or 1: the half to use): a publishing launch and a combining launch,
  // with the host's barrier and event waits between (see host_exchange).
  int host_half;
  int phases;  // kPublish | kCombine
  uint64_t timeout_ns;
};
enum { kPublish = 1, kCombine = 2 };

/**
 * This block's part of the exchange: copies x[begin, end) of the piece into this rank's buffer (when
 * the launch publishes) and returns the offset of the half in use. Device-synchronized, the half is
 * the generation's parity and the block waits for every rank before it returns; only then may the
 * kernels after this one start.
 */
__device__ int64_t exchange(const void* x, int dtype, int64_t begin, int64_t end, const PeerView& v, const Piece& p) {
  const uint64_t g = p.host_half < 0 ? next_generation(v, p.rank) : static_cast<uint64_t>(p.host_half);
  const int64_t half = static_cast<int64_t>(g & 1) * p.half_floats;
  if (p.phases & kPublish) {
    float* mine = v.bufs[p.rank] + half - p.offset;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) mine[i] = load_as_float(x, dtype, i);
  }
  if (p.host_half < 0) arrive_and_wait(v, p.rank, p.size, g, p.timeout_ns);
  pdl_launch_dependents();
  return half;
}

/**
 * kGather false: x[offset, offset + count) ← Σ over ranks, in rank order, in place (x of `dtype`).
 * kGather true: elements [offset, offset + count) of every rank's [rows, cols] f32 x → out [rows, size·cols].
 */
template <bool kGather>
__global__ void peer_collective_kernel(void* x, int dtype, float* out, int cols, PeerView v, Piece p) {
  pdl_wait();
  int64_t begin, end;
  block_chunk(p.offset, p.count, begin, end);
  const int64_t half = exchange(x, dtype, begin, end, v, p);
  if (!(p.phases & kCombine)) return;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    if (kGather) {
      const int64_t row = i / cols, col = i % cols;
      for (int r = 0; r < p.size; r++) out[(row * p.size + r) * cols + col] = __ldcg(v.bufs[r] + half + (i - p.offset));
    } else {
      float s = 0.f;
      for (int r = 0; r < p.size; r++) s += __ldcg(v.bufs[r] + half + (i - p.offset));
      store_from_float(x, dtype, i, s);
    }
  }
}

}  // namespace

struct Group {
  int size = 0;
  Context* ranks[kMaxRanks] = {};
  PeerView view{};
  int64_t half_floats = 0;
  bool use_nccl = false;
  uint64_t nccl_min_bytes = 1u << 20;
  uint64_t timeout_ns = 120'000'000'000ull;  // JAMBA_COLLECTIVE_TIMEOUT_MS
  NcclComm comms[kMaxRanks] = {};
  bool holds[kMaxRanks] = {};  // rank r's buffers are allocated
  int members = 0;             // ranks that have not left yet
  // Host-synchronized collectives (ranks sharing a device): a device-side wait would hang whenever
  // another rank's host call waits for the device to go idle (a library loading a kernel lazily).
  bool host_sync = false;
  cudaEvent_t published[kMaxRanks][2] = {};  // rank r's publishing launch of a generation of parity p
  uint64_t host_generation[kMaxRanks] = {};
  std::mutex barrier_mutex;
  std::condition_variable barrier_cv;
  int barrier_arrived = 0;
  uint64_t barrier_phase = 0;
};

namespace {

/** Every rank's host thread meets here; a rank that does not come within the timeout fails the others. */
int host_barrier(Group& g, int rank) {
  std::unique_lock<std::mutex> lock(g.barrier_mutex);
  const uint64_t phase = g.barrier_phase;
  if (++g.barrier_arrived == g.size) {
    g.barrier_arrived = 0;
    g.barrier_phase++;
    g.barrier_cv.notify_all();
    return 0;
  }
  if (g.barrier_cv.wait_for(lock, std::chrono::nanoseconds(g.timeout_ns), [&] { return g.barrier_phase != phase; })) return 0;
  return fail("rank " + std::to_string(rank) + ": the other ranks did not reach the collective within " + std::to_string(g.timeout_ns / 1000000) + " ms");
}

/**
 * One piece, host-synchronized: this rank publishes into the half of its generation's parity and
 * records that; once every rank has recorded (the host barrier), its stream waits for the others'
 * publishing and combines. A half is written again two generations later, after this rank's stream
 * has waited for every rank's next publishing, which each issues after its own combining of this one.
 */
template <typename Launch>
int host_exchange(Group& g, int rank, Piece p, Launch launch) {
  const int parity = static_cast<int>(g.host_generation[rank]++ & 1);
  p.host_half = parity;
  p.phases = kPublish;
  if (launch(p) != 0) return -1;
  JB_CUDA(cudaEventRecord(g.published[rank][parity], stream()));
  if (host_barrier(g, rank) != 0) return -1;
  for (int r = 0; r < g.size; r++) {
    if (r != rank) JB_CUDA(cudaStreamWaitEvent(stream(), g.published[r][parity], 0));
  }
  p.phases = kCombine;
  return launch(p);
}

/** Launches `launch` for each piece of `count` elements, synchronized as the group is. */
template <typename Launch>
int collective(Group& g, int rank, int64_t count, Launch launch) {
  for (int64_t offset = 0; offset < count; offset += g.half_floats) {
    const Piece p{offset, count - offset < g.half_floats ? count - offset : g.half_floats, rank, g.size, g.half_floats, -1, kPublish | kCombine, g.timeout_ns};
    if ((g.host_sync ? host_exchange(g, rank, p, launch) : launch(p)) != 0) return -1;
  }
  return 0;
}

int launch_all_reduce(Group& g, int rank, const Mat& x) {
  const int64_t count = static_cast<int64_t>(x.rows) * x.cols;
  const size_t elem = x.dtype == JB_DTYPE_F32 ? 4 : 2;
  if (g.use_nccl && count * elem >= g.nccl_min_bytes) {
    return nccl_check(g_nccl.all_reduce(as<void>(x.ptr), as<void>(x.ptr), count, x.dtype == JB_DTYPE_F32 ? kNcclFloat32 : kNcclBfloat16, kNcclSum, g.comms[rank], stream()),
                      "ncclAllReduce");
  }
  return collective(g, rank, count, [&](const Piece& p) {
    return launch_pdl("all-reduce", peer_collective_kernel<false>, kBlocks, kThreads, 0, as<void>(x.ptr), x.dtype, static_cast<float*>(nullptr), 0, g.view, p);
  });
}

}  // namespace

namespace ops {

int all_reduce(Args& a) {
  const Mat x = a.mat();
  if (!current().group) return fail("the context is not a rank of a group (jb_group_create)");
  Group& g = *current().group;
  if (x.dtype != JB_DTYPE_F32 && x.dtype != JB_DTYPE_BF16) return fail("all-reduce: x must be f32 or bf16");
  if (x.ld != x.cols) return fail("all-reduce: x must be contiguous");
  if (x.rows == 0 || (g.size == 1 && !g.use_nccl)) return 0;  // NCCL at one rank: the GPU check's test of the binding
  return launch_all_reduce(g, current().rank, x);
}

int all_gather(Args& a) {
  const Mat x = a.mat();
  const uint64_t out = a.ptr();
  if (!current().group) return fail("the context is not a rank of a group (jb_group_create)");
  Group& g = *current().group;
  if (x.dtype != JB_DTYPE_F32 || x.ld != x.cols) return fail("all-gather: x must be contiguous f32");
  if (x.rows == 0) return 0;
  const int64_t count = static_cast<int64_t>(x.rows) * x.cols;
  const int rank = current().rank;
  return collective(g, rank, count, [&](const Piece& p) {
    return launch_pdl("all-gather", peer_collective_kernel<true>, kBlocks, kThreads, 0, as<void>(x.ptr), static_cast<int>(JB_DTYPE_F32), as<float>(out), x.cols, g.view, p);
  });
}

}  // namespace ops

namespace {

uint64_t rank_bytes(const Group& g) { return 2 * g.half_floats * sizeof(float) + kFlagWords * sizeof(uint64_t); }

/** Frees what rank r holds (on its device) and takes its context out of the group. */
void free_rank(Group& g, int r) {
  Context* c = g.ranks[r];
  if (!c) return;
  cudaSetDevice(c->device);
  if (g.comms[r]) g_nccl.comm_destroy(g.comms[r]);
  for (cudaEvent_t& e : g.published[r]) {
    if (e) cudaEventDestroy(e);
    e = nullptr;
  }
  if (g.holds[r]) {
    cudaFree(g.view.bufs[r]);
    cudaFree(g.view.flags[r]);
    c->allocated -= rank_bytes(g);
    g.members--;
  }
  if (c->group == &g) c->group = nullptr;
  g.ranks[r] = nullptr;
  g.comms[r] = nullptr;
  g.holds[r] = false;
}

int create(Group& g, const int* ids, int size, uint64_t exchange_bytes, int flags) {
  g.size = size;
  g.half_floats = static_cast<int64_t>((exchange_bytes + 3) / 4);
  if (const char* min = std::getenv("JAMBA_NCCL_MIN_BYTES")) g.nccl_min_bytes = std::strtoull(min, nullptr, 10);
  if (const char* ms = std::getenv("JAMBA_COLLECTIVE_TIMEOUT_MS")) g.timeout_ns = std::strtoull(ms, nullptr, 10) * 1000000ull;
  bool distinct = true;
  for (int r = 0; r < size; r++) {
    Context* c = context_by_id(ids[r]);
    if (!c) return fail("group: no context " + std::to_string(ids[r]));
    if (c->group) return fail("group: context " + std::to_string(ids[r]) + " is already a rank of a group");
    for (int q = 0; q < r; q++) {
      if (g.ranks[q] == c) return fail("group: context " + std::to_string(ids[r]) + " given twice");
      if (g.ranks[q]->device == c->device) distinct = false;
    }
    g.ranks[r] = c;
  }
  for (int r = 0; r < size; r++) {
    Context* c = g.ranks[r];
    JB_CUDA(cudaSetDevice(c->device));
    for (int q = 0; q < size; q++) {
      const int peer = g.ranks[q]->device;
      if (peer == c->device) continue;
      int can = 0;
      JB_CUDA(cudaDeviceCanAccessPeer(&can, c->device, peer));
      if (!can) return fail("group: device " + std::to_string(c->device) + " cannot access device " + std::to_string(peer) + "'s memory (the collectives need peer access)");
      const cudaError_t err = cudaDeviceEnablePeerAccess(peer, 0);
      if (err == cudaErrorPeerAccessAlreadyEnabled) cudaGetLastError();
      else if (err != cudaSuccess) return fail_cuda(err, "cudaDeviceEnablePeerAccess");
    }
    JB_CUDA(cudaMalloc(&g.view.bufs[r], 2 * g.half_floats * sizeof(float)));
    const cudaError_t err = cudaMalloc(&g.view.flags[r], kFlagWords * sizeof(uint64_t));
    if (err != cudaSuccess) {
      cudaFree(g.view.bufs[r]);
      return fail_cuda(err, "allocating collective flags");
    }
    g.holds[r] = true;
    c->allocated += rank_bytes(g);
    g.members++;
    JB_CUDA(cudaMemset(g.view.flags[r], 0, kFlagWords * sizeof(uint64_t)));
    for (cudaEvent_t& e : g.published[r]) JB_CUDA(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  }
  g.host_sync = !distinct && !(flags & JB_GROUP_DEVICE_SYNC);
  if ((flags & JB_GROUP_NCCL) && distinct) {
    if (load_nccl(g_nccl) != 0) return -1;
    int devices[kMaxRanks];
    for (int r = 0; r < size; r++) devices[r] = g.ranks[r]->device;
    if (nccl_check(g_nccl.comm_init_all(g.comms, size, devices), "ncclCommInitAll") != 0) return -1;
    g.use_nccl = true;
  }
  for (int r = 0; r < size; r++) {
    JB_CUDA(cudaSetDevice(g.ranks[r]->device));
    JB_CUDA(cudaDeviceSynchronize());  // the flags are zero before any rank's first collective
    g.ranks[r]->group = &g;
    g.ranks[r]->rank = r;
  }
  return 0;
}

}  // namespace

bool captures_graphs(const Context& c) { return !c.group || !c.group->host_sync; }

}  // namespace jb

using namespace jb;

extern "C" {

int jb_group_create(const int* ctxs, int size, uint64_t exchange_bytes, int flags) {
  leave_context();  // errors go to jb_last_error(-1)
  if (size < 1 || size > kMaxRanks) return fail("group: " + std::to_string(size) + " ranks (1 to " + std::to_string(kMaxRanks) + ")");
  auto* g = new Group();
  if (create(*g, ctxs, size, exchange_bytes, flags) != 0) {
    for (int r = 0; r < size; r++) free_rank(*g, r);
    delete g;
    return -1;
  }
  return 0;
}

int jb_group_leave(int ctx) {
  leave_context();
  Context* c = context_by_id(ctx);
  if (!c) return fail("no context " + std::to_string(ctx));
  Group* g = c->group;
  if (!g) return 0;
  free_rank(*g, c->rank);
  if (g->members == 0) delete g;
  return 0;
}

}  // extern "C"
