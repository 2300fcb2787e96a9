// One backend context: a device, its stream, events, CUDA graphs and library handles. A process may
// hold several (one per tensor-parallel rank; two ranks may share a device for testing), each used
// from whichever thread calls the C ABI with its id: every entry point enters its context first, and
// the kernels' launch helpers (stream(), num_sms(), ...) read the calling thread's current context.
#pragma once
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.cuh"

namespace jb {

struct GemmState;  // gemm.cu: the cuBLASLt handle, its workspace and the plans
struct Group;      // collective.cu: the tensor-parallel group this context is a rank of

struct Context {
  int id = -1;
  int device = -1;
  int sms = 0;
  int sm_version = 0;  // major·10 + minor
  bool pdl = false;      // programmatic dependent launch (common.cuh): Hopper on, JAMBA_PDL=0 off
  bool profile = false;  // JAMBA_PROFILE_OPS=1: events around each op of eager runs; graphs off
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  float last_ms = 0.f;
  // Graphs by key; a key is a program that never changes (see jb_run). A key's first run is eager, so
  // one-time work (plans, kernel attributes) happens outside capture; its second run is captured.
  std::unordered_map<int, cudaGraphExec_t> graphs;
  std::unordered_map<int, int> runs;
  std::mutex mutex;  // one run at a time per context
  double op_ms[JB_OP_COUNT] = {};
  double op_calls[JB_OP_COUNT] = {};
  std::vector<cudaEvent_t> op_events;
  // Read by jb_last_error(id) on the JavaScript thread after a call made on a worker thread returned.
  std::string error;
  uint64_t allocated = 0;  // bytes jb_malloc handed out and not freed (a device-sharing rank's budget)
  std::unordered_map<uint64_t, uint64_t> sizes;  // of each live allocation
  GemmState* gemm = nullptr;
  Group* group = nullptr;
  int rank = 0;
};

/** The context the calling thread entered (every C ABI entry point enters one). */
Context& current();
/** The context with this id, or null. */
Context* context_by_id(int id);
/** Leaves the calling thread without a context: failures then go to jb_last_error(-1). */
void leave_context();
/** Whether the context's steps may be captured as graphs (not while its group synchronizes on the host). */
bool captures_graphs(const Context& c);

}  // namespace jb
