// Endpoints to peers and the regions attached through them: connection state, the checks every
// peer blob passes before UCX sees it, and batched one-sided READ/WRITE (async and in-call).
#include <poll.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cmath>

#include "common.h"
#include "segment_check.h"
#include "descriptor.h"
#include "peer_blobs.h"

namespace peercache {

namespace {

constexpr unsigned kOpFields = 4;

// On shared memory every worker maps the peer's segment on its own, and a first READ of each page
// then takes a page fault: with many workers per process that is millions of faults, which
// measured here as the dominant cost of a sweep row at 8+ workers. So the page tables are
// populated in bulk (MADV_POPULATE_READ, Linux >= 5.14; older kernels keep faulting on first
// touch) — by 2 MiB chunk, when a READ first touches it, not the whole region at attach: that took
// ~0.6-2 s per GiB of the peer's segment (a 64 GiB segment: most of a minute before the first READ).
constexpr uint64_t kPopulateChunk = uint64_t{2} << 20;

void PopulateRange(NativeRemote* r, uint64_t offset, uint64_t length) {
  const uint64_t first = offset / kPopulateChunk, last = (offset + length - 1) / kPopulateChunk;
  for (uint64_t c = first; c <= last; ++c) {
    uint64_t& word = r->populated[c >> 6];
    const uint64_t bit = uint64_t{1} << (c & 63);
    if (word & bit) continue;
    word |= bit;
    // The chunk in the mapping, page-aligned and clamped to the region.
    const uintptr_t page = 4096;
    uintptr_t start = (reinterpret_cast<uintptr_t>(r->mapped) + c * kPopulateChunk) & ~(page - 1);
    uintptr_t end = (reinterpret_cast<uintptr_t>(r->mapped) + std::min(r->length, (c + 1) * kPopulateChunk) + page - 1) & ~(page - 1);
    madvise(reinterpret_cast<void*>(start), end - start, 22 /* MADV_POPULATE_READ */);
  }
}  // remoteOffset, localIndex, localOffset, length
constexpr uint64_t kCloseDeadlineNs = 2000000000ull;

std::string EpInfo(ucp_ep_h ep) {
  char* text = nullptr;
  size_t size = 0;
  FILE* stream = open_memstream(&text, &size);
  if (stream == nullptr) return "";
  Ucx().ucp_ep_print_info(ep, stream);
  fclose(stream);
  std::string out(text != nullptr ? text : "", size);
  free(text);
  return out;
}

// Waits for a UCX request (endpoint close) by progressing the worker, bounded by a deadline.
void WaitRequest(NativeWorker* w, void* request, uint64_t deadlineNs) {
  const UcxApi& api = Ucx();
  if (request == nullptr || UCS_PTR_IS_ERR(request)) return;
  while (api.ucp_request_check_status(request) == UCS_INPROGRESS && NowNs() < deadlineNs) {
    if (api.ucp_worker_progress(w->worker) == 0) {
      struct timespec ts = {0, 50000};
      nanosleep(&ts, nullptr);
    }
  }
  api.ucp_request_free(request);
}


}  // namespace

// ---------------------------------------------------------------- remote keys

void NativeRemote::Destroy() {
  if (rkey != nullptr) Ucx().ucp_rkey_destroy(rkey);
  rkey = nullptr;
}

NativeRemote::~NativeRemote() { Destroy(); }

// ---------------------------------------------------------------- endpoints

bool NativeEndpoint::Usable(std::string* why) const {
  if (closed || ep == nullptr || worker == nullptr) {
    *why = failure.empty() ? "endpoint is closed" : "endpoint is closed (" + failure + ")";
    return false;
  }
  if (!failure.empty()) {
    *why = "endpoint failed: " + failure;
    return false;
  }
  return true;
}

void NativeEndpoint::Close(bool force) {
  if (closed) return;
  closed = true;
  for (NativeRemote* r : remotes) {
    r->Destroy();
    r->endpoint = nullptr;
    r->Unref();
  }
  remotes.clear();
  if (ep != nullptr && worker != nullptr) {
    ucp_request_param_t param = {};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    param.flags = (force || !failure.empty() || inflight > 0) ? UCP_EP_CLOSE_FLAG_FORCE : 0;
    void* req = Ucx().ucp_ep_close_nbx(ep, &param);
    WaitRequest(worker, req, NowNs() + kCloseDeadlineNs);
  }
  ep = nullptr;
}

NativeEndpoint::~NativeEndpoint() {}


namespace {

class Remote : public Napi::ObjectWrap<Remote> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Remote",
                       {
                           InstanceAccessor<&Remote::Base>("base"),
                           InstanceAccessor<&Remote::Length>("length"),
                       });
  }
  explicit Remote(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Remote>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      ThrowError(info.Env(), "Remote cannot be constructed directly; use Endpoint.attach", "ERR_INVALID_ARG");
      return;
    }
    remote_ = info[0].As<Napi::External<NativeRemote>>().Data();
  }
  ~Remote() override {
    if (remote_ != nullptr) remote_->Unref();
  }
  NativeRemote* remote() const { return remote_; }

 private:
  Napi::Value Base(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(remote_->base));
  }
  Napi::Value Length(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(remote_->length));
  }
  NativeRemote* remote_ = nullptr;
};

class Endpoint : public Napi::ObjectWrap<Endpoint> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Endpoint",
                       {
                           InstanceMethod<&Endpoint::Attach>("attach"),
                           InstanceMethod<&Endpoint::Read>("read"),
                           InstanceMethod<&Endpoint::ReadSync>("readSync"),
                           InstanceMethod<&Endpoint::Write>("write"),
                           InstanceMethod<&Endpoint::WriteSync>("writeSync"),
                           InstanceMethod<&Endpoint::Info>("info"),
                           InstanceMethod<&Endpoint::CloseEp>("close"),
                           InstanceAccessor<&Endpoint::Failure>("failure"),
                           InstanceAccessor<&Endpoint::Closed>("closed"),
                       });
  }
  explicit Endpoint(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Endpoint>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      ThrowError(info.Env(), "Endpoint cannot be constructed directly; use Worker.connect", "ERR_INVALID_ARG");
      return;
    }
    ep_ = info[0].As<Napi::External<NativeEndpoint>>().Data();
  }
  ~Endpoint() override {
    if (ep_ != nullptr) ep_->Unref();
  }

 private:
  // attach(descriptor): unpack a peer region's rkey on this endpoint.
  Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string why;
    if (!ep_->Usable(&why)) return ThrowError(env, why, "ERR_CLOSED");
    if (info.Length() < 1 || !info[0].IsTypedArray()) {
      return ThrowError(env, "attach(descriptor): descriptor must be a Uint8Array", "ERR_INVALID_ARG");
    }
    Napi::Uint8Array blob = info[0].As<Napi::Uint8Array>();
    DecodedDescriptor d;
    std::string bad = DecodeDescriptor(blob.Data(), blob.ByteLength(), &d);
    if (bad.empty()) bad = CheckPackedRkey(d.rkey, d.rkeySize);
    if (!bad.empty()) return ThrowError(env, "invalid region descriptor: " + bad, "ERR_BAD_RKEY");
    // UCX dies on an rkey it cannot unpack (see segment_check.h): find out first.
    bad = CheckPeerSegments(d.rkey, d.rkeySize, ep_->worker->shared->mdNames);
    if (!bad.empty()) return ThrowError(env, "the peer's region cannot be mapped: " + bad, "ERR_BAD_RKEY");
    ucp_rkey_h rkey = nullptr;
    ucs_status_t st = Ucx().ucp_ep_rkey_unpack(ep_->ep, d.rkey, &rkey);
    if (st != UCS_OK) {
      return ThrowError(env, "cannot unpack the peer's rkey: " + StatusText(st) +
                                 " (was the region freed, or is the peer on another protocol?)",
                        "ERR_BAD_RKEY");
    }
    // Where the rkey maps the peer's segment into this process (shm), a READ is a memcpy from the
    // mapped address: the whole claimed range must be mapped here, or the descriptor lies.
    void* mapped = nullptr;
    if (Ucx().ucp_rkey_ptr(rkey, d.base, &mapped) == UCS_OK && mapped != nullptr && !ReadableRange(mapped, d.length)) {
      Ucx().ucp_rkey_destroy(rkey);
      return ThrowError(env, "invalid region descriptor: its range of " + std::to_string(d.length) +
                                 " bytes is not inside the memory the peer's key maps (damaged or forged blob)",
                        "ERR_BAD_RKEY");
    }
    NativeRemote* r = new NativeRemote();
    r->endpoint = ep_;
    r->rkey = rkey;
    r->base = d.base;
    r->length = d.length;
    if (mapped != nullptr) {
      r->mapped = static_cast<uint8_t*>(mapped);
      r->populated.assign((d.length / kPopulateChunk + 1 + 63) / 64, 0);
    }
    r->Ref();  // the endpoint's reference, dropped when it closes
    ep_->remotes.push_back(r);
    AddonData* data = Instance(env);
    if (data == nullptr) return env.Undefined();
    return data->remoteCtor.New({Napi::External<NativeRemote>::New(env, r)});
  }

  // Validates arguments and posts every op. Returns the batch (caller owns it) or null after
  // throwing a JS error.
  Batch* Post(const Napi::CallbackInfo& info, bool isWrite, bool async) {
    Napi::Env env = info.Env();
    const char* verb = isWrite ? "write" : "read";
    std::string why;
    if (!ep_->Usable(&why)) {
      ThrowError(env, why, "ERR_CLOSED");
      return nullptr;
    }
    AddonData* data = Instance(env);
    if (data == nullptr) return nullptr;
    if (info.Length() < 6 || !info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(data->remoteCtor.Value()) ||
        !info[1].IsArray() || !info[2].IsTypedArray() || !info[3].IsNumber() || !info[4].IsNumber() ||
        !info[5].IsNumber()) {
      ThrowError(env, std::string(verb) + "(remote, locals, ops: Float64Array, count, fenceAt, timeoutMs): bad arguments",
                 "ERR_INVALID_ARG");
      return nullptr;
    }
    Remote* wrap = Remote::Unwrap(info[0].As<Napi::Object>());
    if (wrap == nullptr) return nullptr;  // N-API refuses the call while the environment is torn down
    NativeRemote* remote = wrap->remote();
    if (remote->rkey == nullptr || remote->endpoint != ep_) {
      ThrowError(env, "the remote region is not attached to this endpoint (destroyed, or attached elsewhere)",
                 "ERR_BAD_RKEY");
      return nullptr;
    }
    Napi::Array localsArg = info[1].As<Napi::Array>();
    std::vector<NativeRegion*> locals;
    for (uint32_t i = 0; i < localsArg.Length(); ++i) {
      NativeRegion* r = UnwrapRegion(localsArg.Get(i));
      if (r == nullptr) {
        ThrowError(env, "locals[" + std::to_string(i) + "] is not a Region", "ERR_INVALID_ARG");
        return nullptr;
      }
      if (r->freed) {
        ThrowError(env, "locals[" + std::to_string(i) + "] is freed", "ERR_CLOSED");
        return nullptr;
      }
      locals.push_back(r);
    }
    Napi::TypedArray ta = info[2].As<Napi::TypedArray>();
    if (ta.TypedArrayType() != napi_float64_array) {
      ThrowError(env, "ops must be a Float64Array of [remoteOffset, localIndex, localOffset, length] quads",
                 "ERR_INVALID_ARG");
      return nullptr;
    }
    Napi::Float64Array ops = info[2].As<Napi::Float64Array>();
    double countD = info[3].As<Napi::Number>().DoubleValue();
    if (!(countD >= 1) || std::floor(countD) != countD || countD * kOpFields > ops.ElementLength()) {
      ThrowError(env, "count must be a positive integer with 4*count <= ops.length", "ERR_INVALID_ARG");
      return nullptr;
    }
    size_t count = static_cast<size_t>(countD);
    double fenceAtD = info[4].As<Napi::Number>().DoubleValue();
    double timeoutMs = info[5].As<Napi::Number>().DoubleValue();
    if (!(timeoutMs > 0)) {
      ThrowError(env, "timeoutMs must be > 0: every wait has a deadline", "ERR_INVALID_ARG");
      return nullptr;
    }
    const double* q = ops.Data();
    // Validate everything before posting anything: a bad op must not leave half a batch in flight.
    // (Messages are built only on failure: this loop runs for every op of every batch.)
    for (size_t i = 0; i < count; ++i) {
      double roff = q[i * kOpFields], lidx = q[i * kOpFields + 1], loff = q[i * kOpFields + 2],
             len = q[i * kOpFields + 3];
      if (!(len >= 1) || std::floor(len) != len) {
        ThrowError(env, "op " + std::to_string(i) + ": length must be a positive integer (got " + std::to_string(len) + ")",
                   "ERR_INVALID_ARG");
        return nullptr;
      }
      if (!(lidx >= 0) || std::floor(lidx) != lidx || lidx >= locals.size()) {
        ThrowError(env, "op " + std::to_string(i) + ": local region index out of range", "ERR_INVALID_ARG");
        return nullptr;
      }
      NativeRegion* l = locals[static_cast<size_t>(lidx)];
      if (!(loff >= 0) || std::floor(loff) != loff || loff + len > static_cast<double>(l->length)) {
        ThrowError(env, "op " + std::to_string(i) + ": local range [" + std::to_string(static_cast<uint64_t>(loff)) + ", +" +
                            std::to_string(static_cast<uint64_t>(len)) + ") is outside the registered " +
                            std::to_string(l->length) + " bytes",
                   "ERR_OUT_OF_RANGE");
        return nullptr;
      }
      if (!(roff >= 0) || std::floor(roff) != roff || roff + len > static_cast<double>(remote->length)) {
        ThrowError(env, "op " + std::to_string(i) + ": remote range [" + std::to_string(static_cast<uint64_t>(roff)) + ", +" +
                            std::to_string(static_cast<uint64_t>(len)) + ") is outside the peer's " +
                            std::to_string(remote->length) + "-byte region",
                   "ERR_OUT_OF_RANGE");
        return nullptr;
      }
    }
    const UcxApi& api = Ucx();
    Batch* b = new Batch();
    b->endpoint = ep_;
    ep_->Ref();
    ++ep_->inflight;
    b->remote = remote;
    remote->Ref();
    b->locals = locals;
    for (NativeRegion* r : locals) r->Ref();
    b->isWrite = isWrite;
    b->async = async;
    b->count = static_cast<int>(count);
    b->deadlineNs = NowNs() + static_cast<uint64_t>(timeoutMs * 1e6);
    size_t fenceAt = (fenceAtD >= 1 && fenceAtD < countD) ? static_cast<size_t>(fenceAtD) : count;
    NativeWorker* w = ep_->worker;
    ucp_request_param_t param = {};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_MEMH;
    param.cb.send = OnOpDone;
    param.user_data = b;
    for (size_t i = 0; i < count; ++i) {
      if (i == fenceAt) {
        ucs_status_t fs = api.ucp_worker_fence(w->worker);
        if (fs != UCS_OK) {
          b->status = fs;
          b->error = "ucp_worker_fence failed: " + StatusText(fs);
          break;
        }
      }
      NativeRegion* l = locals[static_cast<size_t>(q[i * kOpFields + 1])];
      uint8_t* local = l->address + static_cast<size_t>(q[i * kOpFields + 2]);
      size_t len = static_cast<size_t>(q[i * kOpFields + 3]);
      uint64_t raddr = remote->base + static_cast<uint64_t>(q[i * kOpFields]);
      if (remote->mapped != nullptr) PopulateRange(remote, static_cast<uint64_t>(q[i * kOpFields]), len);
      param.memh = l->memh;
      ucs_status_ptr_t sp = isWrite ? api.ucp_put_nbx(ep_->ep, local, len, raddr, remote->rkey, &param)
                                    : api.ucp_get_nbx(ep_->ep, local, len, raddr, remote->rkey, &param);
      if (sp == nullptr) continue;  // completed in place
      if (UCS_PTR_IS_ERR(sp)) {
        b->status = UCS_PTR_STATUS(sp);
        break;  // ops already posted still complete through the callback
      }
      ++b->remaining;
    }
    return b;
  }

  // Waits for a batch on the calling thread: progress, then sleep on the worker's event fd (capped
  // at 1 ms for transports that raise no events) until done or the deadline.
  void WaitSync(Batch* b) {
    NativeWorker* w = b->endpoint->worker;
    const UcxApi& api = Ucx();
    while (b->remaining > 0) {
      if (w->Drain() > 0) continue;
      if (b->remaining == 0) break;
      uint64_t now = NowNs();
      if (now > b->deadlineNs) {
        b->TimeOut();
        break;
      }
      if (api.ucp_worker_arm(w->worker) == UCS_ERR_BUSY) continue;
      struct pollfd pfd = {w->efd, POLLIN, 0};
      ::poll(&pfd, 1, 1);
    }
  }

  Napi::Value Sync(const Napi::CallbackInfo& info, bool isWrite) {
    Napi::Env env = info.Env();
    Batch* b = Post(info, isWrite, false);
    if (b == nullptr) return env.Undefined();
    WaitSync(b);
    bool ok = b->status == UCS_OK && b->error.empty();
    std::string err = ok ? "" : BatchError(*b);
    bool timedOut = b->remaining > 0;
    if (b->remaining == 0) {
      b->ReleaseRefs();
      delete b;
    } else {
      // Forced close completes the requests later; the worker frees the batch then.
      b->settled = true;
      b->endpoint->worker->pending.push_back(b);
      b->endpoint->worker->Kick();
    }
    if (!ok || timedOut) return ThrowError(env, err, timedOut ? "ERR_TIMEOUT" : "ERR_TRANSFER");
    return env.Undefined();
  }

  Napi::Value Async(const Napi::CallbackInfo& info, bool isWrite) {
    Napi::Env env = info.Env();
    Batch* b = Post(info, isWrite, true);
    if (b == nullptr) return env.Undefined();
    Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
    Napi::Promise promise = deferred.Promise();
    if (b->remaining == 0) {
      // The common case on shm: every op completed in place.
      if (b->status == UCS_OK && b->error.empty()) {
        deferred.Resolve(env.Undefined());
      } else {
        deferred.Reject(MakeError(env, BatchError(*b), "ERR_TRANSFER").Value());
      }
      b->ReleaseRefs();
      delete b;
      return promise;
    }
    b->deferred = new Napi::Promise::Deferred(deferred);
    NativeWorker* w = b->endpoint->worker;
    w->pending.push_back(b);
    w->Kick();
    return promise;
  }

  Napi::Value Read(const Napi::CallbackInfo& info) { return Async(info, false); }
  Napi::Value ReadSync(const Napi::CallbackInfo& info) { return Sync(info, false); }
  Napi::Value Write(const Napi::CallbackInfo& info) { return Async(info, true); }
  Napi::Value WriteSync(const Napi::CallbackInfo& info) { return Sync(info, true); }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    std::string why;
    if (!ep_->Usable(&why)) return ThrowError(info.Env(), why, "ERR_CLOSED");
    return Napi::String::New(info.Env(), EpInfo(ep_->ep));
  }
  Napi::Value CloseEp(const Napi::CallbackInfo& info) {
    ep_->Close(false);
    return info.Env().Undefined();
  }
  Napi::Value Failure(const Napi::CallbackInfo& info) {
    if (ep_->failure.empty()) return info.Env().Null();
    return Napi::String::New(info.Env(), ep_->failure);
  }
  Napi::Value Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), ep_->closed); }

  NativeEndpoint* ep_ = nullptr;
};


}  // namespace

void InitEndpoint(Napi::Env env, Napi::Object exports, AddonData* data) {
  Napi::Function endpoint = Endpoint::Define(env);
  Napi::Function remote = Remote::Define(env);
  data->endpointCtor = Napi::Persistent(endpoint);
  data->remoteCtor = Napi::Persistent(remote);
  exports.Set("Endpoint", endpoint);
  exports.Set("Remote", remote);
}

}  // namespace peercache
