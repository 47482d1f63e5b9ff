// The JS Worker: one UCX worker per thread that moves data — its address, connect() to peers, and
// its endpoints' lifetime.
#include <poll.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cmath>

#include "common.h"
#include "peer_blobs.h"

namespace peercache {

namespace {

void OnPeerError(void* arg, ucp_ep_h, ucs_status_t status) {
  NativeEndpoint* e = static_cast<NativeEndpoint*>(arg);
  if (e->failure.empty()) e->failure = "peer failed: " + StatusText(status);
}

class Worker : public Napi::ObjectWrap<Worker> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Worker",
                       {
                           InstanceMethod<&Worker::Address>("address"),
                           InstanceMethod<&Worker::Connect>("connect"),
                           InstanceMethod<&Worker::CloseWorker>("close"),
                           InstanceAccessor<&Worker::Pending>("pending"),
                       });
  }

  explicit Worker(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Worker>(info) {
    Napi::Env env = info.Env();
    std::string error;
    SharedContext* sc = info.Length() > 0 ? UnwrapContext(info[0], &error) : nullptr;
    if (sc == nullptr) {
      ThrowError(env, "Worker(context): " + (error.empty() ? std::string("expected a Context") : error),
                 "ERR_INVALID_ARG");
      return;
    }
    AddonData* data = Instance(env);
    if (data == nullptr) return;
    NativeWorker* w = new NativeWorker(data, sc);
    if (!w->Init(&error)) {
      w->Unref();
      ThrowError(env, error, "ERR_UCX");
      return;
    }
    w->Ref();  // the addon's list holds one reference until Close
    data->workers.push_back(w);
    worker_ = w;
  }

  ~Worker() override {
    if (worker_ != nullptr) {
      // A worker no JS code can reach any more is closed (its endpoints with it).
      if (!worker_->closed) {
        worker_->Close();
        worker_->Unref();
      }
      worker_->Unref();
    }
  }

 private:
  bool Check(Napi::Env env) {
    if (worker_ != nullptr && !worker_->closed) return true;
    ThrowError(env, "Worker is closed", "ERR_CLOSED");
    return false;
  }

  Napi::Value Address(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Check(env)) return env.Undefined();
    std::string own;
    if (!OwnAddress(&own)) return ThrowError(env, "ucp_worker_get_address failed", "ERR_UCX");
    // Framed with the UCX version and a checksum: a peer checks both before UCX parses it.
    std::string framed = EncodeAddress(reinterpret_cast<const uint8_t*>(own.data()), own.size(), Ucx().version);
    return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(framed.data()), framed.size());
  }

  bool OwnAddress(std::string* out) {
    ucp_address_t* addr = nullptr;
    size_t len = 0;
    if (Ucx().ucp_worker_get_address(worker_->worker, &addr, &len) != UCS_OK) return false;
    out->assign(reinterpret_cast<const char*>(addr), len);
    Ucx().ucp_worker_release_address(worker_->worker, addr);
    return len > 0;
  }

  // connect(peerAddress, { peerErrors }): an endpoint to a peer worker (its own QP on RDMA).
  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Check(env)) return env.Undefined();
    if (info.Length() < 1 || !info[0].IsTypedArray()) {
      return ThrowError(env, "connect(address): address must be a Uint8Array from the peer's Worker.address()",
                        "ERR_INVALID_ARG");
    }
    Napi::Uint8Array blob = info[0].As<Napi::Uint8Array>();
    std::string own;
    if (!OwnAddress(&own)) return ThrowError(env, "ucp_worker_get_address failed", "ERR_UCX");
    const uint8_t* peerAddress = nullptr;
    size_t peerAddressSize = 0;
    std::string bad = DecodeAddress(blob.Data(), blob.ByteLength(), Ucx().version, static_cast<uint8_t>(own[0]),
                                    &peerAddress, &peerAddressSize);
    if (!bad.empty()) return ThrowError(env, "connect(address): invalid peer worker address: " + bad, "ERR_BAD_ADDRESS");
    // UCX's peer-failure handling needs transports that can detect it: RDMA can, 1.13's
    // shared-memory transports cannot (ep creation then fails), so it is on for rdma only.
    bool peerErrors = worker_->shared->protocol == "rdma";
    if (info.Length() > 1 && info[1].IsObject()) {
      Napi::Value pe = info[1].As<Napi::Object>().Get("peerErrors");
      if (pe.IsBoolean()) peerErrors = pe.As<Napi::Boolean>().Value();
    }
    NativeEndpoint* e = new NativeEndpoint();
    e->worker = worker_;
    ucp_ep_params_t params = {};
    params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS;
    params.address = reinterpret_cast<const ucp_address_t*>(peerAddress);
    if (peerErrors) {
      params.field_mask |= UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER;
      params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
      params.err_handler.cb = OnPeerError;
      params.err_handler.arg = e;
    }
    ucs_status_t st = Ucx().ucp_ep_create(worker_->worker, &params, &e->ep);
    if (st != UCS_OK) {
      e->ep = nullptr;
      e->closed = true;
      e->Unref();
      return ThrowError(env, "cannot connect to the peer: " + StatusText(st) +
                                 " (is it on the same protocol, and for shm on this host?)",
                        "ERR_CONNECT");
    }
    e->Ref();  // the worker's reference
    worker_->endpoints.push_back(e);
    AddonData* data = Instance(env);
    if (data == nullptr) return env.Undefined();
    return data->endpointCtor.New({Napi::External<NativeEndpoint>::New(env, e)});
  }

  Napi::Value Pending(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), worker_ ? static_cast<double>(worker_->pending.size()) : 0);
  }

  Napi::Value CloseWorker(const Napi::CallbackInfo& info) {
    if (worker_ != nullptr && !worker_->closed) {
      worker_->Close();
      worker_->Unref();  // the addon list's reference
    }
    return info.Env().Undefined();
  }

  NativeWorker* worker_ = nullptr;
};

}  // namespace

void InitWorker(Napi::Env env, Napi::Object exports, AddonData*) {
  exports.Set("Worker", Worker::Define(env));
}

}  // namespace peercache
