// Process-wide UCX contexts (one per protocol/device configuration) and the JS `Context` class.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "segment_check.h"
#include "glibc_compat.h"

namespace peercache {
namespace {

pthread_mutex_t g_contextsMutex = PTHREAD_MUTEX_INITIALIZER;
// Never destroyed: contexts still alive at process exit are reclaimed by the OS, and a static
// destructor could run while another thread still uses one.
std::vector<SharedContext*>* g_contexts = nullptr;

const char* kShmTls = "posix,sysv,cma,self";
const char* kRdmaTls = "rc_x,rc_verbs,ud_x,ud_verbs,dc_x";

std::string Join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const std::string& item : items) {
    if (!out.empty()) out += sep;
    out += item;
  }
  return out;
}

// Restrict UCX to the transports of one protocol: a mixed list would fall back silently.
bool Configure(ucp_config_t* config, const ContextOptions& o, SharedContext* sc, std::string* error) {
  const UcxApi& api = Ucx();
  sc->tls = !o.tlsOverride.empty() ? o.tlsOverride : (o.protocol == "rdma" ? kRdmaTls : kShmTls);
  ucs_status_t st = api.ucp_config_modify(config, "TLS", sc->tls.c_str());
  if (st != UCS_OK) {
    *error = "UCX rejected TLS=" + sc->tls + ": " + StatusText(st);
    return false;
  }
  if (o.protocol == "rdma" && !o.devices.empty()) {
    std::vector<std::string> withPort;
    for (const std::string& d : o.devices) {
      withPort.push_back(d.find(':') == std::string::npos ? d + ":" + std::to_string(o.ibPort) : d);
    }
    sc->netDevices = Join(withPort, ",");
    st = api.ucp_config_modify(config, "NET_DEVICES", sc->netDevices.c_str());
    if (st != UCS_OK) {
      *error = "UCX rejected NET_DEVICES=" + sc->netDevices + ": " + StatusText(st);
      return false;
    }
  }
  if (o.protocol == "rdma" && o.gidIndex >= 0) {
    std::string gid = std::to_string(o.gidIndex);
    st = api.ucp_config_modify(config, "IB_GID_INDEX", gid.c_str());
    if (st != UCS_OK) {
      *error = "UCX rejected IB_GID_INDEX=" + gid + ": " + StatusText(st);
      return false;
    }
  }
  return true;
}

std::string ContextKey(const ContextOptions& o) {
  return o.protocol + "|" + Join(o.devices, ",") + "|" + std::to_string(o.ibPort) + "|" +
         std::to_string(o.gidIndex) + "|" + o.tlsOverride;
}

std::string NoRunMessage(const ContextOptions& o, const SharedContext& sc, ucs_status_t st) {
  std::string msg = "protocol '" + o.protocol + "' cannot run here: UCX (" + Ucx().version +
                    ") could not open ";
  if (o.protocol == "rdma") {
    msg += "an RDMA transport (TLS=" + sc.tls;
    if (!sc.netDevices.empty()) msg += ", devices " + sc.netDevices;
    msg += "): " + StatusText(st) +
           ". No usable RDMA NIC/port was found. Check `ibv_devices`/`ibv_devinfo` (port ACTIVE), "
           "or use {protocol} shm (same host) or {protocol} tcp (smoke test only)";
  } else {
    msg += "its shared-memory transports (TLS=" + sc.tls + "): " + StatusText(st) + ". Use {protocol} tcp (smoke test only)";
  }
  // {protocol}: the option, named by the caller's layer (the CLI says --protocol); see src/errors.ts.
  return msg;
}

}  // namespace

SharedContext* AcquireContext(const ContextOptions& o, std::string* error) {
  const UcxApi& api = Ucx();
  if (!api.loaded) {
    *error = "protocol '" + o.protocol + "' needs UCX: " + api.error;
    return nullptr;
  }
  if (o.protocol != "rdma" && o.protocol != "shm") {
    *error = "unknown protocol '" + o.protocol + "' for the UCX data plane (expected rdma or shm)";
    return nullptr;
  }
  std::string key = ContextKey(o);
  pthread_mutex_lock(&g_contextsMutex);
  if (g_contexts == nullptr) g_contexts = new std::vector<SharedContext*>();
  for (SharedContext* sc : *g_contexts) {
    if (sc->key == key) {
      ++sc->refs;
      pthread_mutex_unlock(&g_contextsMutex);
      return sc;
    }
  }
  SharedContext* sc = new SharedContext();
  sc->key = key;
  sc->protocol = o.protocol;
  ucp_config_t* config = nullptr;
  ucs_status_t st = api.ucp_config_read(nullptr, nullptr, &config);
  if (st != UCS_OK) {
    pthread_mutex_unlock(&g_contextsMutex);
    *error = "ucp_config_read failed: " + StatusText(st);
    delete sc;
    return nullptr;
  }
  if (!Configure(config, o, sc, error)) {
    api.ucp_config_release(config);
    pthread_mutex_unlock(&g_contextsMutex);
    delete sc;
    return nullptr;
  }
  ucp_params_t params = {};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
  params.features = UCP_FEATURE_RMA | UCP_FEATURE_WAKEUP;
  params.mt_workers_shared = 1;
  st = api.ucp_init_version(UCP_API_MAJOR, UCP_API_MINOR, &params, config, &sc->context);
  api.ucp_config_release(config);
  if (st != UCS_OK) {
    pthread_mutex_unlock(&g_contextsMutex);
    *error = NoRunMessage(o, *sc, st);
    delete sc;
    return nullptr;
  }
  sc->mdNames = ParseMdNames(DescribeContext(sc->context));
  sc->refs = 1;
  g_contexts->push_back(sc);
  pthread_mutex_unlock(&g_contextsMutex);
  return sc;
}

void RetainContext(SharedContext* sc) {
  pthread_mutex_lock(&g_contextsMutex);
  ++sc->refs;
  pthread_mutex_unlock(&g_contextsMutex);
}

void ReleaseContext(SharedContext* sc) {
  pthread_mutex_lock(&g_contextsMutex);
  bool last = --sc->refs == 0;
  if (last) RemoveFrom(*g_contexts, sc);
  pthread_mutex_unlock(&g_contextsMutex);
  if (last) {
    Ucx().ucp_cleanup(sc->context);
    delete sc;
  }
}

std::string DescribeContext(ucp_context_h context) {
  char* text = nullptr;
  size_t size = 0;
  FILE* stream = open_memstream(&text, &size);
  if (stream == nullptr) return "";
  Ucx().ucp_context_print_info(context, stream);
  fclose(stream);
  std::string out(text != nullptr ? text : "", size);
  free(text);
  return out;
}

namespace {

bool AllocateArgs(const Napi::CallbackInfo& info, size_t* length, bool* remoteWritable) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    ThrowError(env, "allocate(bytes): bytes must be a positive integer", "ERR_INVALID_ARG");
    return false;
  }
  double bytes = info[0].As<Napi::Number>().DoubleValue();
  if (!(bytes >= 1) || bytes != static_cast<double>(static_cast<uint64_t>(bytes)) || bytes > 1e15) {
    ThrowError(env, "allocate(bytes): bytes must be a positive integer", "ERR_INVALID_ARG");
    return false;
  }
  *length = static_cast<size_t>(bytes);
  // allocate(bytes, remoteWritable): peers may only READ unless asked otherwise. Enforced by RDMA
  // NICs (no remote-write access on the memory region); UCX 1.13's shared-memory transports map
  // segments read-write whatever the flags say (measured: test/transport/ucx-read-only.test.ts).
  *remoteWritable = info.Length() > 1 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
  return true;
}

// ucp_mem_map(ALLOCATE) + query; no JS: callable from any thread.
bool MapPublished(SharedContext* sc, size_t length, bool remoteWritable, ucp_mem_h* memhOut, void** addressOut,
                  std::string* error) {
  const UcxApi& api = Ucx();
  ucp_mem_map_params_t params = {};
  params.field_mask = UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_FLAGS | UCP_MEM_MAP_PARAM_FIELD_PROT;
  params.length = length;
  params.flags = UCP_MEM_MAP_ALLOCATE;
  params.prot = UCP_MEM_MAP_PROT_LOCAL_READ | UCP_MEM_MAP_PROT_LOCAL_WRITE | UCP_MEM_MAP_PROT_REMOTE_READ |
                (remoteWritable ? UCP_MEM_MAP_PROT_REMOTE_WRITE : 0);
  ucp_mem_h memh = nullptr;
  ucs_status_t st = api.ucp_mem_map(sc->context, &params, &memh);
  if (st != UCS_OK) {
    *error = "cannot allocate a published region of " + std::to_string(length) + " bytes through UCX: " +
             StatusText(st) +
             " (on shm this is SysV/posix shared memory: check kernel.shmmax/shmall and free space in /dev/shm)";
    return false;
  }
  ucp_mem_attr_t attr = {};
  attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS | UCP_MEM_ATTR_FIELD_LENGTH;
  st = api.ucp_mem_query(memh, &attr);
  if (st != UCS_OK) {
    api.ucp_mem_unmap(sc->context, memh);
    *error = "ucp_mem_query failed: " + StatusText(st);
    return false;
  }
  *memhOut = memh;
  *addressOut = attr.address;
  return true;
}

Napi::Value WrapPublished(Napi::Env env, SharedContext* sc, ucp_mem_h memh, void* address, size_t length) {
  NativeRegion* region = new NativeRegion();
  RetainContext(sc);
  region->shared = sc;
  region->memh = memh;
  region->address = static_cast<uint8_t*>(address);
  region->length = length;
  region->published = true;
  return WrapRegion(env, region);
}

// allocateAsync's work: holds the context until it is done, so a close() meanwhile cannot free it.
class AllocateWork : public Napi::AsyncWorker {
 public:
  AllocateWork(Napi::Env env, SharedContext* sc, size_t length, bool remoteWritable)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), sc_(sc), length_(length),
        remoteWritable_(remoteWritable) {
    RetainContext(sc_);
  }
  ~AllocateWork() override { ReleaseContext(sc_); }
  Napi::Promise Promise() const { return deferred_.Promise(); }
  void Execute() override { ok_ = MapPublished(sc_, length_, remoteWritable_, &memh_, &address_, &error_); }
  void OnOK() override {
    Napi::Env env = Env();
    if (!ok_) {
      deferred_.Reject(MakeError(env, error_, "ERR_ALLOC").Value());
      return;
    }
    deferred_.Resolve(WrapPublished(env, sc_, memh_, address_, length_));
  }

 private:
  Napi::Promise::Deferred deferred_;
  SharedContext* sc_;
  size_t length_;
  bool remoteWritable_;
  bool ok_ = false;
  ucp_mem_h memh_ = nullptr;
  void* address_ = nullptr;
  std::string error_;
};

class Context : public Napi::ObjectWrap<Context> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Context",
                       {
                           InstanceAccessor<&Context::Protocol>("protocol"),
                           InstanceAccessor<&Context::Tls>("tls"),
                           InstanceAccessor<&Context::Devices>("devices"),
                           InstanceMethod<&Context::Allocate>("allocate"),
                           InstanceMethod<&Context::AllocateAsync>("allocateAsync"),
                           InstanceMethod<&Context::Register>("register"),
                           InstanceMethod<&Context::Close>("close"),
                       });
  }

  explicit Context(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Context>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      ThrowError(env, "Context(options): options must be an object", "ERR_INVALID_ARG");
      return;
    }
    Napi::Object opts = info[0].As<Napi::Object>();
    ContextOptions o;
    Napi::Value protocol = opts.Get("protocol");
    if (!protocol.IsString()) {
      ThrowError(env, "Context(options): options.protocol must be 'rdma' or 'shm'", "ERR_INVALID_ARG");
      return;
    }
    o.protocol = protocol.As<Napi::String>().Utf8Value();
    Napi::Value devices = opts.Get("devices");
    if (devices.IsArray()) {
      Napi::Array list = devices.As<Napi::Array>();
      for (uint32_t i = 0; i < list.Length(); ++i) {
        Napi::Value d = list.Get(i);
        if (d.IsString() && !d.As<Napi::String>().Utf8Value().empty()) {
          o.devices.push_back(d.As<Napi::String>().Utf8Value());
        }
      }
    }
    Napi::Value port = opts.Get("ibPort");
    if (port.IsNumber()) o.ibPort = port.As<Napi::Number>().Int32Value();
    Napi::Value gid = opts.Get("gidIndex");
    if (gid.IsNumber()) o.gidIndex = gid.As<Napi::Number>().Int32Value();
    Napi::Value tls = opts.Get("tls");
    if (tls.IsString()) o.tlsOverride = tls.As<Napi::String>().Utf8Value();
    std::string error;
    shared_ = AcquireContext(o, &error);
    if (shared_ == nullptr) {
      ThrowError(env, error, "ERR_PROTOCOL_UNAVAILABLE");
      return;
    }
  }

  ~Context() override {
    if (shared_ != nullptr) ReleaseContext(shared_);
  }

  SharedContext* shared() const { return shared_; }

 private:
  bool Check(Napi::Env env) {
    if (shared_ != nullptr) return true;
    ThrowError(env, "Context is closed", "ERR_CLOSED");
    return false;
  }
  Napi::Value Protocol(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), shared_ ? shared_->protocol : "");
  }
  Napi::Value Tls(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), shared_ ? shared_->tls : "");
  }
  Napi::Value Devices(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), shared_ ? shared_->netDevices : "");
  }

  // allocate(bytes): a published region allocated by UCX (UCP_MEM_MAP_ALLOCATE), so that shm
  // readers can map it and RDMA NICs can read it.
  Napi::Value Allocate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Check(env)) return env.Undefined();
    size_t length = 0;
    bool remoteWritable = false;
    if (!AllocateArgs(info, &length, &remoteWritable)) return env.Undefined();
    ucp_mem_h memh = nullptr;
    void* address = nullptr;
    std::string error;
    if (!MapPublished(shared_, length, remoteWritable, &memh, &address, &error)) return ThrowError(env, error, "ERR_ALLOC");
    return WrapPublished(env, shared_, memh, address, length);
  }

  // allocateAsync(bytes, remoteWritable): the same on a libuv pool thread, so that the event loop
  // stays free while UCX maps a big segment (its POSIX allocator writes every byte of the backing
  // file before mapping it: seconds per GiB). The context is mt_workers_shared, so ucp_mem_map
  // from that thread is safe; the main thread makes no UCX call meanwhile (PeerCacheStore.open).
  Napi::Value AllocateAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Check(env)) return env.Undefined();
    size_t length = 0;
    bool remoteWritable = false;
    if (!AllocateArgs(info, &length, &remoteWritable)) return env.Undefined();
    AllocateWork* work = new AllocateWork(env, shared_, length, remoteWritable);
    Napi::Promise promise = work->Promise();
    work->Queue();
    return promise;
  }

  // register(view): register an existing ArrayBuffer/SharedArrayBuffer view as a local buffer (the
  // destination of READs, the source of WRITEs). The view is kept alive until free().
  Napi::Value Register(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Check(env)) return env.Undefined();
    if (info.Length() < 1 || !info[0].IsTypedArray()) {
      return ThrowError(env, "register(view): view must be a Uint8Array (over an ArrayBuffer or SharedArrayBuffer)",
                        "ERR_INVALID_ARG");
    }
    void* data = nullptr;
    size_t length = 0;
    napi_typedarray_type type;
    napi_status ns = napi_get_typedarray_info(env, info[0], &type, &length, &data, nullptr, nullptr);
    if (ns != napi_ok || type != napi_uint8_array) {
      return ThrowError(env, "register(view): view must be a Uint8Array", "ERR_INVALID_ARG");
    }
    if (length == 0 || data == nullptr) {
      return ThrowError(env, "register(view): cannot register an empty view", "ERR_INVALID_ARG");
    }
    if (info.Length() >= 2 && !info[1].IsUndefined()) {
      // register(view, length): a mapShared mapping longer than any one JS view (its first window).
      const double whole = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
      if (!(whole >= static_cast<double>(length) && whole <= 9007199254740991.0) || whole != static_cast<double>(static_cast<uint64_t>(whole))) {
        return ThrowError(env, "register(view, length): length must be an integer at least the view's", "ERR_INVALID_ARG");
      }
      if (!WithinSharedMapping(data, static_cast<size_t>(whole))) {
        return ThrowError(env, "register(view, length): past its view, only a mapShared mapping can be registered", "ERR_INVALID_ARG");
      }
      length = static_cast<size_t>(whole);
    }
    const UcxApi& api = Ucx();
    ucp_mem_map_params_t params = {};
    params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
    params.address = data;
    params.length = length;
    ucp_mem_h memh = nullptr;
    ucs_status_t st = api.ucp_mem_map(shared_->context, &params, &memh);
    if (st != UCS_OK) {
      return ThrowError(env, "cannot register " + std::to_string(length) + " bytes with UCX: " + StatusText(st) +
                                 " (on RDMA: check `ulimit -l`, the locked-memory limit)",
                        "ERR_REGISTER");
    }
    NativeRegion* region = new NativeRegion();
    RetainContext(shared_);
    region->shared = shared_;
    region->memh = memh;
    region->address = static_cast<uint8_t*>(data);
    region->length = length;
    region->published = false;
    region->keepalive = Napi::Persistent(info[0]);
    return WrapRegion(env, region);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (shared_ != nullptr) {
      ReleaseContext(shared_);
      shared_ = nullptr;
    }
    return info.Env().Undefined();
  }

  SharedContext* shared_ = nullptr;
};

}  // namespace

SharedContext* UnwrapContext(Napi::Value value, std::string* error) {
  AddonData* data = Instance(value.Env());
  if (data == nullptr) {
    *error = "the environment is shutting down";
    return nullptr;
  }
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(data->contextCtor.Value())) {
    *error = "expected a Context";
    return nullptr;
  }
  Context* ctx = Context::Unwrap(value.As<Napi::Object>());
  if (ctx == nullptr) {  // N-API refuses the call while the environment is torn down
    *error = "the environment is shutting down";
    return nullptr;
  }
  if (ctx->shared() == nullptr) {
    *error = "Context is closed";
    return nullptr;
  }
  return ctx->shared();
}

void InitContext(Napi::Env env, Napi::Object exports, AddonData* data) {
  Napi::Function ctor = Context::Define(env);
  data->contextCtor = Napi::Persistent(ctor);
  exports.Set("Context", ctor);
}

}  // namespace peercache
