// mapShared(path, length): maps a file (a memfd another process shares, through
// /proc/<pid>/fd/<n>) MAP_SHARED read-write and returns it as an external ArrayBuffer. Node cannot
// mmap; the sidecar registers the view with UCX so READs land in, and publishes copy from, the
// other process's pages. The mapping is unmapped when the ArrayBuffer is garbage-collected.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common.h"

namespace peercache {

namespace {

void Unmap(Napi::Env, void* data, size_t* length) {
  munmap(data, *length);
  delete length;
}

Napi::Value MapShared(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsString() || !info[1].IsNumber()) return ThrowError(env, "mapShared(path, length): a path string and a byte length", "ERR_INVALID_ARG");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  double want = info[1].As<Napi::Number>().DoubleValue();
  if (!(want >= 1 && want <= 9007199254740991.0) || want != static_cast<double>(static_cast<uint64_t>(want))) return ThrowError(env, "mapShared: length must be a positive integer", "ERR_INVALID_ARG");
  size_t length = static_cast<size_t>(want);
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return ThrowError(env, "mapShared: cannot open " + path + ": " + std::strerror(errno), "ERR_MAP");
  // The size by lseek, not fstat: fstat binds to GLIBC_2.33 and the prebuild must load on 2.28.
  off_t size = lseek(fd, 0, SEEK_END);
  if (size < 0 || static_cast<uint64_t>(size) < length) {
    close(fd);
    return ThrowError(env, "mapShared: " + path + " has " + std::to_string(size < 0 ? 0 : size) + " bytes (or is no file), fewer than the " + std::to_string(length) + " asked for", "ERR_MAP");
  }
  void* p = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd);
  if (p == MAP_FAILED) return ThrowError(env, "mapShared: mmap of " + path + " failed: " + std::strerror(err), "ERR_MAP");
  return Napi::ArrayBuffer::New(env, p, length, Unmap, new size_t(length));
}

}  // namespace

void InitSharedMapping(Napi::Env env, Napi::Object exports) {
  exports.Set("mapShared", Napi::Function::New(env, MapShared, "mapShared"));
}

}  // namespace peercache
