// Shared declarations of the peercache data-plane addon: a thin layer over UCX ucp.
// Every JS thread that loads the addon gets its own AddonData (context-aware addon); native objects
// of one thread are used only on that thread, except SharedContext, which is process-wide.
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ucx_api.h"

namespace peercache {

// Single-thread intrusive reference count: native objects live while a JS wrapper, an owner or an
// in-flight batch still points at them. (std::shared_ptr would raise the glibc floor; see
// glibc_compat.h.)
class RefCounted {
 public:
  void Ref() { ++refs_; }
  void Unref() {
    if (--refs_ == 0) delete this;
  }

 protected:
  virtual ~RefCounted() = default;

 private:
  int refs_ = 1;
};

struct ContextOptions {
  std::string protocol;              // "rdma" | "shm"
  std::vector<std::string> devices;  // RDMA device names (rails), e.g. mlx5_0
  int ibPort = 1;
  int gidIndex = -1;  // -1: let UCX choose
  std::string tlsOverride;
};

// One ucp_context per distinct configuration per process, shared by every thread's workers
// (UCP_PARAM_FIELD_MT_WORKERS_SHARED), so memory registered once is usable from every thread.
struct SharedContext {
  std::string key;
  std::string protocol;
  std::string tls;
  std::string netDevices;
  ucp_context_h context = nullptr;
  // This context's memory domain names by index (segment_check.h).
  std::vector<std::string> mdNames;
  int refs = 0;
};

SharedContext* AcquireContext(const ContextOptions& options, std::string* error);
void RetainContext(SharedContext* context);
void ReleaseContext(SharedContext* context);

// Text UCX prints about a context (its components, memory domains and resources).
std::string DescribeContext(ucp_context_h context);

class NativeWorker;
class NativeEndpoint;

struct NativeRegion : RefCounted {
  SharedContext* shared = nullptr;
  ucp_mem_h memh = nullptr;
  uint8_t* address = nullptr;
  size_t length = 0;
  bool published = false;  // allocated by UCX (peers may READ it) vs a registered JS view
  bool freed = false;
  Napi::Reference<Napi::Value> keepalive;  // the registered JS view, or none
  Napi::Reference<Napi::ArrayBuffer> buffer;  // weak: the published region's ArrayBuffer
  std::vector<Napi::Reference<Napi::ArrayBuffer>> windows;  // weak: its windows, when over 4 GiB
  void Free();

 protected:
  ~NativeRegion() override;
};

struct NativeRemote : RefCounted {
  NativeEndpoint* endpoint = nullptr;  // not owned
  ucp_rkey_h rkey = nullptr;
  uint64_t base = 0;
  uint64_t length = 0;
  // Where the rkey maps the peer's segment into this process (shm), else null; its page tables
  // are populated chunk by chunk on first use (endpoint.cc PopulateRange), one bit per chunk.
  uint8_t* mapped = nullptr;
  std::vector<uint64_t> populated;
  void Destroy();

 protected:
  ~NativeRemote() override;
};

class NativeEndpoint : public RefCounted {
 public:
  NativeWorker* worker = nullptr;  // owner; null once the worker closed
  ucp_ep_h ep = nullptr;
  std::string failure;  // set when UCX reported the peer failed or a batch timed out
  std::vector<NativeRemote*> remotes;
  int inflight = 0;
  bool closed = false;
  void Close(bool force);
  bool Usable(std::string* why) const;

 protected:
  ~NativeEndpoint() override;
};

struct AddonData;

// One ucp_worker per JS thread that moves data. Waits on the worker's event fd through libuv, so no
// thread spins while JS awaits a Promise; a timer bounds every wait with a deadline.
class NativeWorker : public RefCounted {
 public:
  NativeWorker(AddonData* addon, SharedContext* shared);
  bool Init(std::string* error);
  void Close();
  // Progress until idle; returns the number of events progressed.
  unsigned Drain();
  // Called after posting: settle finished batches, start the wait machinery if needed.
  void Kick();
  void OnWake();

  AddonData* addon;
  SharedContext* shared;
  ucp_worker_h worker = nullptr;
  int efd = -1;
  uv_poll_t* poll = nullptr;
  uv_timer_t* timer = nullptr;
  bool timerActive = false;
  bool closed = false;
  std::vector<NativeEndpoint*> endpoints;
  std::vector<struct Batch*> pending;

 protected:
  ~NativeWorker() override;
};

struct Batch {
  NativeEndpoint* endpoint = nullptr;
  NativeRemote* remote = nullptr;
  std::vector<NativeRegion*> locals;
  bool isWrite = false;
  int count = 0;
  int remaining = 0;  // posted ops not completed yet
  ucs_status_t status = UCS_OK;
  std::string error;  // first error text
  uint64_t deadlineNs = 0;
  bool settled = false;  // promise resolved/rejected (async) or returned (sync)
  bool async = false;
  Napi::Promise::Deferred* deferred = nullptr;
  void ReleaseRefs();
  // Past its deadline: says so once (error) and force-closes its endpoint, which completes the
  // outstanding requests with errors.
  void TimeOut();
};

// UCX's completion callback of every op of a batch (user data: the Batch).
void OnOpDone(void* request, ucs_status_t status, void* userData);
// The text a failed batch rejects with.
std::string BatchError(const Batch& b);

struct AddonData {
  Napi::Env env;
  uv_loop_t* loop = nullptr;
  Napi::FunctionReference contextCtor;
  Napi::FunctionReference regionCtor;
  Napi::FunctionReference endpointCtor;
  Napi::FunctionReference remoteCtor;
  std::vector<NativeWorker*> workers;
  explicit AddonData(Napi::Env e) : env(e) {}
};

uint64_t NowNs();
// The addon's data for this environment, or null while the environment is torn down (a worker
// terminated mid-call: N-API refuses the call, and node-addon-api's GetInstanceData would abort).
inline AddonData* Instance(napi_env env) {
  void* data = nullptr;
  if (napi_get_instance_data(env, &data) != napi_ok) return nullptr;
  return static_cast<AddonData*>(data);
}
Napi::Value ThrowError(Napi::Env env, const std::string& message, const char* code = nullptr);
// Node 20's external buffers hold at most 4 GiB; longer memory reaches JS as windows of kWindowBytes
// every kWindowStride bytes (any range of up to a stride lies inside one window).
constexpr size_t kMaxExternalBytes = size_t{1} << 32;
constexpr size_t kWindowStride = size_t{1} << 30;
constexpr size_t kWindowBytes = size_t{2} << 30;
// Whether [p, p + length) lies inside one mapShared mapping (register() may then go past its view).
bool WithinSharedMapping(const void* p, size_t length);
Napi::Error MakeError(Napi::Env env, const std::string& message, const char* code = nullptr);

void InitContext(Napi::Env env, Napi::Object exports, AddonData* data);
void InitRegion(Napi::Env env, Napi::Object exports, AddonData* data);
void InitWorker(Napi::Env env, Napi::Object exports, AddonData* data);
void InitEndpoint(Napi::Env env, Napi::Object exports, AddonData* data);
void InitSharedMapping(Napi::Env env, Napi::Object exports);

Napi::Object WrapRegion(Napi::Env env, NativeRegion* region);
NativeRegion* UnwrapRegion(Napi::Value value);
SharedContext* UnwrapContext(Napi::Value value, std::string* error);

template <typename T>
void RemoveFrom(std::vector<T*>& list, T* item) {
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i] == item) {
      list[i] = list.back();
      list.pop_back();
      return;
    }
  }
}

}  // namespace peercache
