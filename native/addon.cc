// peercache data-plane addon: module entry. Context-aware: every JS thread that loads it gets its
// own AddonData, workers and endpoints; only UCX contexts are shared process-wide.
#include "common.h"

namespace peercache {

Napi::Error MakeError(Napi::Env env, const std::string& message, const char* code) {
  Napi::Error error = Napi::Error::New(env, message);
  if (code != nullptr) error.Set("code", Napi::String::New(env, code));
  return error;
}

Napi::Value ThrowError(Napi::Env env, const std::string& message, const char* code) {
  MakeError(env, message, code).ThrowAsJavaScriptException();
  return env.Undefined();
}

namespace {

// Bumped whenever the JS-visible surface changes; the TS wrapper refuses a mismatched binary.
constexpr int kAbiVersion = 5;

Napi::Value UcxStatus(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const UcxApi& api = Ucx();
  Napi::Object out = Napi::Object::New(env);
  out.Set("available", Napi::Boolean::New(env, api.loaded));
  out.Set("library", api.loaded ? Napi::Value(Napi::String::New(env, api.library)) : env.Null());
  out.Set("version", api.loaded ? Napi::Value(Napi::String::New(env, api.version)) : env.Null());
  out.Set("error", api.loaded ? env.Null() : Napi::Value(Napi::String::New(env, api.error)));
  return out;
}

// Everything UCX can open on this host (no TLS restriction), as UCX prints it: for `doctor`.
Napi::Value DescribeHost(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const UcxApi& api = Ucx();
  if (!api.loaded) return ThrowError(env, api.error, "ERR_NO_UCX");
  ucp_config_t* config = nullptr;
  ucs_status_t st = api.ucp_config_read(nullptr, nullptr, &config);
  if (st != UCS_OK) return ThrowError(env, "ucp_config_read failed: " + StatusText(st), "ERR_UCX");
  ucp_params_t params = {};
  params.field_mask = UCP_PARAM_FIELD_FEATURES;
  params.features = UCP_FEATURE_RMA;
  ucp_context_h context = nullptr;
  st = api.ucp_init_version(UCP_API_MAJOR, UCP_API_MINOR, &params, config, &context);
  api.ucp_config_release(config);
  if (st != UCS_OK) return ThrowError(env, "ucp_init failed: " + StatusText(st), "ERR_UCX");
  std::string text = DescribeContext(context);
  api.ucp_cleanup(context);
  return Napi::String::New(env, text);
}

// The address of a typed array's first byte: lets JS align host buffers (memcpy into a
// 16-byte-offset destination, as V8's large ArrayBuffers are, runs ~10% slower here).
Napi::Value AddressOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) return ThrowError(env, "addressOf(view): view must be a typed array", "ERR_INVALID_ARG");
  void* data = nullptr;
  size_t length = 0;
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, info[0], &type, &length, &data, nullptr, nullptr) != napi_ok) {
    return ThrowError(env, "addressOf(view): not a typed array", "ERR_INVALID_ARG");
  }
  return Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(data)));
}

void Cleanup(void* arg) {
  AddonData* data = static_cast<AddonData*>(arg);
  std::vector<NativeWorker*> workers = data->workers;
  for (NativeWorker* w : workers) {
    w->Close();
    w->Unref();
  }
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  AddonData* data = new AddonData(env);
  napi_get_uv_event_loop(env, &data->loop);
  env.SetInstanceData<AddonData>(data);
  napi_add_env_cleanup_hook(env, Cleanup, data);
  exports.Set("abiVersion", Napi::Number::New(env, kAbiVersion));
  exports.Set("ucx", Napi::Function::New(env, UcxStatus, "ucx"));
  exports.Set("describeHost", Napi::Function::New(env, DescribeHost, "describeHost"));
  exports.Set("addressOf", Napi::Function::New(env, AddressOf, "addressOf"));
  InitContext(env, exports, data);
  InitRegion(env, exports, data);
  InitWorker(env, exports, data);
  InitEndpoint(env, exports, data);
  InitSharedMapping(env, exports);
  return exports;
}

}  // namespace peercache

static Napi::Object InitPeercache(Napi::Env env, Napi::Object exports) { return peercache::Init(env, exports); }

NODE_API_MODULE(peercache, InitPeercache)
