// mapShared(path, length): maps a file of shared memory (a memfd another process shares, through
// /proc/<pid>/fd/<n>; a disk file is refused) MAP_SHARED read-write and returns it as an external ArrayBuffer. Node cannot
// mmap; the sidecar registers the view with UCX so READs land in, and publishes copy from, the
// other process's pages. The mapping is unmapped when the ArrayBuffer is garbage-collected.
//
// The other process may shrink the file at any time (SGLang's memfd is created without
// MFD_ALLOW_SEALING, so it cannot be sealed), and touching a page past the new end raises SIGBUS,
// which would kill the sidecar. A SIGBUS handler (the way Wayland compositors guard wl_shm pools)
// replaces the mapping past the file's new end with anonymous memory, marks it shrunk and lets the
// copy finish there; sharedMappingShrunk(buffer) tells JS, which then drops the pool. Faults
// outside these mappings go to the previous handler (or the default action).
//
// Node's external buffers hold at most 4 GiB (buffer.constants.MAX_LENGTH), and SGLang's host pools
// are larger. A longer file is still mapped in one piece (UCX registers it whole), and JS sees it
// through windows: 2 GiB external ArrayBuffers every 1 GiB, so any range of up to 1 GiB lies inside
// one window. mapShared returns the first; sharedMappingWindow(first, i) makes window i when it is
// first needed (each external buffer costs V8 a few ms of GC accounting: a 1 TiB pool's 1,023 made
// at once took 2.9 s). The mapping goes when the last window is collected.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "common.h"

#ifndef F_GET_SEALS  // linux/fcntl.h: F_LINUX_SPECIFIC_BASE + 10 (older libc headers lack it)
#define F_GET_SEALS 1034
#endif

namespace peercache {

namespace {

// Mappings the SIGBUS handler may repair. The handler only reads these atomics; slots are taken and
// freed on the JS thread. 8192 >= the sidecar's connections x pools per connection.
constexpr int kMaxMappings = 8192;
struct MappingSlot {
  std::atomic<int> used{0};
  int buffers = 0;  // ArrayBuffers (windows) still alive over the mapping; JS thread only
  std::atomic<uintptr_t> start{0};
  std::atomic<size_t> length{0};
  std::atomic<int> shrunk{0};
  int fd = -1;  // kept open: sharedMappingShrunk(buffer, true) compares the file's size with the mapping's
};
MappingSlot g_slots[kMaxMappings];
std::atomic<int> g_high{0};  // slots at and above this index were never used: lookups stop there
struct sigaction g_previous;
bool g_installed = false;

// The slot whose mapping holds [addr, addr + length), or -1. Atomics only: the SIGBUS handler uses it.
int SlotHolding(uintptr_t addr, size_t length) {
  const int high = g_high.load(std::memory_order_acquire);
  for (int i = 0; i < high; i++) {
    const uintptr_t start = g_slots[i].start.load(std::memory_order_acquire);
    if (start != 0 && addr >= start && addr + length <= start + g_slots[i].length.load(std::memory_order_acquire)) return i;
  }
  return -1;
}

// The slot of the mapping that starts at `buffer` (its first window), or -1.
int SlotStartingAt(Napi::ArrayBuffer buffer) {
  const uintptr_t start = reinterpret_cast<uintptr_t>(buffer.Data());
  const int i = start == 0 ? -1 : SlotHolding(start, 1);
  return i >= 0 && g_slots[i].start.load(std::memory_order_acquire) == start ? i : -1;
}

void OnSigbus(int sig, siginfo_t* info, void* context) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const int i = SlotHolding(addr, 1);
  if (i >= 0) {
    MappingSlot& s = g_slots[i];
    const uintptr_t start = s.start.load(std::memory_order_acquire);
    const size_t length = s.length.load(std::memory_order_acquire);
    // Every page past the file's end now, at once (a copy then faults once, not once per page);
    // from the faulting page if the file shrank again since.
    const off_t size = lseek(s.fd, 0, SEEK_END);
    const uintptr_t kept = size <= 0 ? 0 : (static_cast<uintptr_t>(size) + page - 1) & ~(page - 1);
    uintptr_t from = start + (kept < length ? kept : length);
    if (addr < from) from = addr & ~(page - 1);
    void* p = mmap(reinterpret_cast<void*>(from), start + length - from, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p != MAP_FAILED) {
      s.shrunk.store(1, std::memory_order_release);
      return;  // the faulting access is retried, on anonymous memory now
    }
  }
  if ((g_previous.sa_flags & SA_SIGINFO) && g_previous.sa_sigaction != nullptr) {
    g_previous.sa_sigaction(sig, info, context);
  } else if (!(g_previous.sa_flags & SA_SIGINFO) && g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
  } else {
    // The default action: a fault would repeat on return, a SIGBUS sent by kill() would not.
    signal(sig, SIG_DFL);
    raise(sig);
  }
}

bool InstallHandler() {
  if (g_installed) return true;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &g_previous) != 0) return false;
  g_installed = true;
  return true;
}

void Unmap(int* slot) {  // an ArrayBuffer over the mapping was collected (or a hold ended)
  MappingSlot& s = g_slots[*slot];
  const bool last = --s.buffers == 0;
  delete slot;
  if (!last) return;
  void* data = reinterpret_cast<void*>(s.start.load(std::memory_order_relaxed));
  s.start.store(0, std::memory_order_release);
  munmap(data, s.length.load(std::memory_order_relaxed));
  close(s.fd);
  s.fd = -1;
  s.length.store(0, std::memory_order_release);
  s.used.store(0, std::memory_order_release);
}

void FinalizeWindow(napi_env, void*, void* hint) { Unmap(static_cast<int*>(hint)); }

// An external ArrayBuffer over [p, p + length) of slot `slot`'s mapping. The raw N-API call: on a
// failure Node has already run the finalizer (node-addon-api's wrapper would then free its data a
// second time: a double free, seen here for buffers over 4 GiB).
napi_value Window(napi_env env, int slot, void* p, size_t length) {
  g_slots[slot].buffers++;
  napi_value ab = nullptr;
  if (napi_create_external_arraybuffer(env, p, length, FinalizeWindow, new int(slot), &ab) != napi_ok) return nullptr;
  return ab;
}

Napi::Value MapShared(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsString() || !info[1].IsNumber()) return ThrowError(env, "mapShared(path, length): a path string and a byte length", "ERR_INVALID_ARG");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  double want = info[1].As<Napi::Number>().DoubleValue();
  if (!(want >= 1 && want <= 9007199254740991.0) || want != static_cast<double>(static_cast<uint64_t>(want))) return ThrowError(env, "mapShared: length must be a positive integer", "ERR_INVALID_ARG");
  size_t length = static_cast<size_t>(want);
  if (!InstallHandler()) return ThrowError(env, std::string("mapShared: cannot install the SIGBUS handler: ") + std::strerror(errno), "ERR_MAP");
  int slot = 0;
  for (int expected = 0; slot < kMaxMappings; slot++, expected = 0) {
    if (g_slots[slot].used.compare_exchange_strong(expected, 1)) break;
  }
  if (slot == kMaxMappings) return ThrowError(env, "mapShared: " + std::to_string(kMaxMappings) + " files are mapped already", "ERR_MAP");
  for (int high = g_high.load(); high < slot + 1 && !g_high.compare_exchange_weak(high, slot + 1);) {
  }
  auto giveBack = [slot]() { g_slots[slot].used.store(0, std::memory_order_release); };
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    giveBack();
    return ThrowError(env, "mapShared: cannot open " + path + ": " + std::strerror(errno), "ERR_MAP");
  }
  // Shared memory only (a memfd, a file on tmpfs or hugetlbfs), judged by the file opened, not by
  // its name: only those answer F_GET_SEALS. A disk file is refused whatever its path says.
  if (fcntl(fd, F_GET_SEALS) < 0) {
    close(fd);
    giveBack();
    return ThrowError(env, "mapShared: " + path + " is not shared memory (a memfd, or a file on tmpfs or hugetlbfs)", "ERR_NOT_SHARED_MEMORY");
  }
  // The size by lseek, not fstat: fstat binds to GLIBC_2.33 and the prebuild must load on 2.28.
  off_t size = lseek(fd, 0, SEEK_END);
  if (size < 0 || static_cast<uint64_t>(size) < length) {
    close(fd);
    giveBack();
    return ThrowError(env, "mapShared: " + path + " has " + std::to_string(size < 0 ? 0 : size) + " bytes (or is no file), fewer than the " + std::to_string(length) + " asked for", "ERR_MAP");
  }
  void* p = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  if (p == MAP_FAILED) {
    close(fd);
    giveBack();
    return ThrowError(env, "mapShared: mmap of " + path + " failed: " + std::strerror(err), "ERR_MAP");
  }
  MappingSlot& s = g_slots[slot];
  s.fd = fd;
  s.buffers = 1;  // held by this call until every window exists: a failure midway cannot unmap
  s.shrunk.store(0, std::memory_order_relaxed);
  s.length.store(length, std::memory_order_release);
  s.start.store(reinterpret_cast<uintptr_t>(p), std::memory_order_release);
  uint8_t* base = static_cast<uint8_t*>(p);
  Napi::Value result;
  if (length <= kMaxExternalBytes) {
    napi_value ab = Window(env, slot, p, length);
    if (ab != nullptr) result = Napi::Value(env, ab);
  } else {
    napi_value ab = Window(env, slot, base, kWindowBytes);
    if (ab != nullptr) {
      Napi::Array windows = Napi::Array::New(env);
      windows.Set(0u, Napi::Value(env, ab));
      result = windows;
    }
  }
  Unmap(new int(slot));  // this call's hold
  if (result.IsEmpty()) return ThrowError(env, "mapShared: cannot make the " + std::to_string(length) + "-byte mapping of " + path + " an ArrayBuffer", "ERR_MAP");
  return result;
}

}  // namespace

bool WithinSharedMapping(const void* p, size_t length) { return SlotHolding(reinterpret_cast<uintptr_t>(p), length) >= 0; }

namespace {

// sharedMappingWindow(first, i): window i (bytes i x stride .. + 2 strides, or to the end) of the
// mapping whose first window is `first`.
Napi::Value SharedMappingWindow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsArrayBuffer() || !info[1].IsNumber()) return ThrowError(env, "sharedMappingWindow(first, index): a mapShared window and an integer", "ERR_INVALID_ARG");
  const int slot = SlotStartingAt(info[0].As<Napi::ArrayBuffer>());
  if (slot < 0) return ThrowError(env, "sharedMappingWindow: the buffer is not the first window of a mapShared mapping", "ERR_INVALID_ARG");
  const double index = info[1].As<Napi::Number>().DoubleValue();
  const size_t length = g_slots[slot].length.load(std::memory_order_acquire);
  if (!(index >= 0) || index != static_cast<double>(static_cast<uint64_t>(index)) || index * static_cast<double>(kWindowStride) >= static_cast<double>(length)) {
    return ThrowError(env, "sharedMappingWindow: no window " + std::to_string(static_cast<int64_t>(index)) + " in a " + std::to_string(length) + "-byte mapping", "ERR_INVALID_ARG");
  }
  const size_t at = static_cast<size_t>(index) * kWindowStride;
  napi_value ab = Window(env, slot, reinterpret_cast<uint8_t*>(g_slots[slot].start.load()) + at, std::min(kWindowBytes, length - at));
  if (ab == nullptr) return ThrowError(env, "sharedMappingWindow: cannot make window " + std::to_string(static_cast<int64_t>(index)), "ERR_MAP");
  return Napi::Value(env, ab);
}

// sharedMappingShrunk(buffer, checkFile): whether the file under a mapShared buffer shrank: a page
// was already replaced after a SIGBUS, or (checkFile) the file is now shorter than the mapping.
Napi::Value SharedMappingShrunk(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsArrayBuffer() || !info[1].IsBoolean()) return ThrowError(env, "sharedMappingShrunk(buffer, checkFile): a mapShared ArrayBuffer and a boolean", "ERR_INVALID_ARG");
  const int i = SlotStartingAt(info[0].As<Napi::ArrayBuffer>());
  if (i < 0) return ThrowError(env, "sharedMappingShrunk: the buffer is not a mapShared mapping", "ERR_INVALID_ARG");
  MappingSlot& s = g_slots[i];
  if (s.shrunk.load(std::memory_order_acquire)) return Napi::Boolean::New(env, true);
  if (!info[1].As<Napi::Boolean>().Value()) return Napi::Boolean::New(env, false);
  off_t size = lseek(s.fd, 0, SEEK_END);
  return Napi::Boolean::New(env, size < 0 || static_cast<uint64_t>(size) < s.length.load(std::memory_order_relaxed));
}

}  // namespace

void InitSharedMapping(Napi::Env env, Napi::Object exports) {
  exports.Set("mapShared", Napi::Function::New(env, MapShared, "mapShared"));
  exports.Set("sharedWindowStride", Napi::Number::New(env, static_cast<double>(kWindowStride)));
  exports.Set("sharedMappingWindow", Napi::Function::New(env, SharedMappingWindow, "sharedMappingWindow"));
  exports.Set("sharedMappingShrunk", Napi::Function::New(env, SharedMappingShrunk, "sharedMappingShrunk"));
}

}  // namespace peercache
