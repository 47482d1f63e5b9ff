// Memory regions: published (UCX-allocated, readable by peers) and registered local JS views.
#include <algorithm>
#include <cstring>

#include "common.h"
#include "descriptor.h"

namespace peercache {

void NativeRegion::Free() {
  if (freed) return;
  freed = true;
  // Detach first: after this no JS view can touch the memory we are about to unmap.
  if (!buffer.IsEmpty()) {
    Napi::ArrayBuffer ab = buffer.Value();
    if (!ab.IsEmpty() && !ab.IsDetached()) ab.Detach();
    buffer.Reset();
  }
  for (Napi::Reference<Napi::ArrayBuffer>& w : windows) {
    Napi::ArrayBuffer ab = w.Value();
    if (!ab.IsEmpty() && !ab.IsDetached()) ab.Detach();
    w.Reset();
  }
  windows.clear();
  if (memh != nullptr && shared != nullptr) Ucx().ucp_mem_unmap(shared->context, memh);
  memh = nullptr;
  address = nullptr;
  if (!keepalive.IsEmpty()) keepalive.Reset();
}

NativeRegion::~NativeRegion() {
  Free();
  if (shared != nullptr) ReleaseContext(shared);
}

namespace {

class Region : public Napi::ObjectWrap<Region> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Region",
                       {
                           InstanceAccessor<&Region::Address>("address"),
                           InstanceAccessor<&Region::Length>("length"),
                           InstanceAccessor<&Region::Published>("published"),
                           InstanceAccessor<&Region::Freed>("freed"),
                           InstanceMethod<&Region::Descriptor>("descriptor"),
                           InstanceMethod<&Region::FreeRegion>("free"),
                       });
  }

  explicit Region(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Region>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      ThrowError(info.Env(), "Region cannot be constructed directly; use Context.allocate/register",
                 "ERR_INVALID_ARG");
      return;
    }
    region_ = info[0].As<Napi::External<NativeRegion>>().Data();
  }

  ~Region() override {
    // The wrapper's reference; the region's memory lives on while a batch or its ArrayBuffer uses it.
    if (region_ != nullptr) region_->Unref();
  }

  NativeRegion* region() const { return region_; }

 private:
  Napi::Value Address(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(region_->address)));
  }
  Napi::Value Length(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(region_->length));
  }
  Napi::Value Published(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), region_->published);
  }
  Napi::Value Freed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), region_->freed); }

  // descriptor(): what a peer needs to READ this region (base, length, packed rkey), framed and
  // checksummed so a damaged blob is rejected before it reaches UCX.
  Napi::Value Descriptor(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (region_->freed) return ThrowError(env, "region is freed", "ERR_CLOSED");
    if (!region_->published) {
      return ThrowError(env, "only a published region (Context.allocate) can be described to peers",
                        "ERR_INVALID_ARG");
    }
    void* packed = nullptr;
    size_t size = 0;
    ucs_status_t st = Ucx().ucp_rkey_pack(region_->shared->context, region_->memh, &packed, &size);
    if (st != UCS_OK) return ThrowError(env, "ucp_rkey_pack failed: " + StatusText(st), "ERR_UCX");
    std::string blob = EncodeDescriptor(reinterpret_cast<uintptr_t>(region_->address), region_->length,
                                        static_cast<const uint8_t*>(packed), size);
    Ucx().ucp_rkey_buffer_release(packed);
    return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(blob.data()), blob.size());
  }

  Napi::Value FreeRegion(const Napi::CallbackInfo& info) {
    region_->Free();
    return info.Env().Undefined();
  }

  NativeRegion* region_ = nullptr;
};

void FinalizeWindow(napi_env, void*, void* hint) { static_cast<NativeRegion*>(hint)->Unref(); }

// An external ArrayBuffer over part of a published region, holding a reference to it. Raw N-API: on
// a failure Node has already run the finalizer (the reference is given back), nothing to undo.
napi_value RegionWindow(napi_env env, NativeRegion* region, size_t at, size_t length) {
  region->Ref();
  napi_value ab = nullptr;
  if (napi_create_external_arraybuffer(env, region->address + at, length, FinalizeWindow, region, &ab) != napi_ok) return nullptr;
  return ab;
}

}  // namespace

Napi::Object WrapRegion(Napi::Env env, NativeRegion* region) {
  AddonData* data = Instance(env);
  if (data == nullptr) return Napi::Object();
  Napi::Object obj = data->regionCtor.New({Napi::External<NativeRegion>::New(env, region)});
  if (region->published) {
    // The ArrayBuffer holds its own reference, so the memory cannot be unmapped under a live view
    // except by an explicit free(), which detaches the buffer first. Node 20's external buffers stop
    // at 4 GiB: a longer region comes as `windows`, 2 GiB every 1 GiB (like mapShared's).
    if (region->length <= kMaxExternalBytes) {
      napi_value ab = RegionWindow(env, region, 0, region->length);
      if (ab == nullptr) return Napi::Object();
      region->buffer = Napi::Weak(Napi::ArrayBuffer(env, ab));
      obj.DefineProperty(Napi::PropertyDescriptor::Value("buffer", Napi::Value(env, ab), napi_enumerable));
    } else {
      Napi::Array windows = Napi::Array::New(env);
      for (size_t at = 0;; at += kWindowStride) {
        const size_t length = std::min(kWindowBytes, region->length - at);
        napi_value ab = RegionWindow(env, region, at, length);
        if (ab == nullptr) return Napi::Object();
        region->windows.push_back(Napi::Weak(Napi::ArrayBuffer(env, ab)));
        windows.Set(static_cast<uint32_t>(region->windows.size() - 1), Napi::Value(env, ab));
        if (at + kWindowBytes >= region->length) break;
      }
      obj.DefineProperty(Napi::PropertyDescriptor::Value("windows", windows, napi_enumerable));
    }
  }
  return obj;
}

NativeRegion* UnwrapRegion(Napi::Value value) {
  AddonData* data = Instance(value.Env());
  if (data == nullptr || !value.IsObject() || !value.As<Napi::Object>().InstanceOf(data->regionCtor.Value())) return nullptr;
  Region* wrap = Region::Unwrap(value.As<Napi::Object>());
  return wrap == nullptr ? nullptr : wrap->region();  // null: N-API refuses calls during teardown
}

void InitRegion(Napi::Env env, Napi::Object exports, AddonData* data) {
  Napi::Function ctor = Region::Define(env);
  data->regionCtor = Napi::Persistent(ctor);
  exports.Set("Region", ctor);
}

}  // namespace peercache
