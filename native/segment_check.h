// A peer's shared-memory segments, attached here before its packed rkey reaches UCX.
//
// Why: when ucp_ep_rkey_unpack fails for one memory domain of several (UCX 1.13 through at least
// 1.16), its error path releases the keys of the domains it has not unpacked yet — uninitialised
// memory — and the process dies (SIGSEGV in uct_rkey_release). The domains whose unpack can fail are
// the shared-memory ones: they attach the peer's segment (sysv: shmat; posix: open + mmap). So a
// region its owner freed, a peer that restarted, or a forged segment id would kill the reader.
// Attaching each such segment here first (and letting go at once) turns all of those into an error
// for that one peer. Domain identity comes from this process's own context (same UCX version and
// configuration on both sides of an shm connection: the address envelope checks the version).
#pragma once

#include <fcntl.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace peercache {

// Memory domain names by index, from ucp_context_print_info's "#   md N :  component C name" lines.
inline std::vector<std::string> ParseMdNames(const std::string& description) {
  std::vector<std::string> names;
  size_t pos = 0;
  while (pos < description.size()) {
    size_t end = description.find('\n', pos);
    if (end == std::string::npos) end = description.size();
    std::string line = description.substr(pos, end - pos);
    pos = end + 1;
    unsigned md = 0, component = 0;
    char name[128] = {0};
    if (std::sscanf(line.c_str(), "# md %u : component %u %127s", &md, &component, name) == 3 && md < 64) {
      if (names.size() <= md) names.resize(md + 1);
      names[md] = name;
    }
  }
  return names;
}

namespace segment_check {

constexpr uint64_t kPosixProcfs = uint64_t{1} << 63;
constexpr uint64_t kPosixShmOpen = uint64_t{1} << 62;
constexpr uint64_t kPosixFlags = uint64_t{0xf} << 60;  // procfs, shm_open, hugetlb, pid namespace
constexpr int kProcfsPidBits = 30;

inline std::string Errno(int err) { return std::strerror(err); }

inline std::string CheckSysv(const uint8_t* key, size_t size) {
  if (size != 12) return "its sysv key is " + std::to_string(size) + " bytes, not 12";
  int32_t shmid;
  std::memcpy(&shmid, key, 4);
  void* at = shmat(shmid, nullptr, SHM_RDONLY);
  if (at == reinterpret_cast<void*>(-1)) {
    return "its shared memory segment (sysv id " + std::to_string(shmid) + ") cannot be attached (" + Errno(errno) +
           "): the region was freed, the peer restarted, or the key is forged";
  }
  shmdt(at);
  return "";
}

inline std::string CheckPosix(const uint8_t* key, size_t size) {
  if (size < 24) return "its posix key is " + std::to_string(size) + " bytes, under 24";
  uint64_t segId, length;
  std::memcpy(&segId, key, 8);
  std::memcpy(&length, key + 16, 8);
  const uint64_t mmid = segId & ~kPosixFlags;
  char path[4352];
  if (segId & kPosixProcfs) {
    const int pid = static_cast<int>(mmid & ((uint64_t{1} << kProcfsPidBits) - 1));
    const int fd = static_cast<int>(mmid >> kProcfsPidBits);
    std::snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fd);
  } else if (segId & kPosixShmOpen) {
    std::snprintf(path, sizeof path, "/dev/shm/ucx_shm_posix_%" PRIx64, mmid);
  } else {
    // The segment lives in a directory the key names, NUL-terminated after the fixed fields.
    const char* dir = reinterpret_cast<const char*>(key + 24);
    size_t dirLength = strnlen(dir, size - 24);
    if (dirLength == size - 24 || dirLength == 0) return "its posix key names no directory";
    std::snprintf(path, sizeof path, "%.*s/ucx_shm_posix_%" PRIx64, static_cast<int>(dirLength), dir, mmid);
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return std::string("its shared memory segment (") + path + ") cannot be opened (" + Errno(errno) +
           "): the region was freed, the peer restarted, or the key is forged";
  }
  // Size by lseek, not fstat: fstat binds to GLIBC_2.33 and the prebuild keeps the 2.28 floor.
  const off_t end = lseek(fd, 0, SEEK_END);
  bool small = end < 0 || static_cast<uint64_t>(end) < length;
  close(fd);
  if (small) return std::string("its shared memory segment (") + path + ") is smaller than its key says";
  return "";
}

}  // namespace segment_check

// "" when every shared-memory segment the packed rkey names can be attached; else why not. The
// rkey's structure has been checked already (CheckPackedRkey).
inline std::string CheckPeerSegments(const uint8_t* p, size_t size, const std::vector<std::string>& mdNames) {
  uint64_t mdMap;
  std::memcpy(&mdMap, p, 8);
  size_t off = 9;
  for (int bit = 0; bit < 64 && off < size; ++bit) {
    if ((mdMap & (uint64_t{1} << bit)) == 0) continue;
    const size_t n = p[off];
    const uint8_t* key = p + off + 1;
    off += 1 + n;
    if (off > size) break;
    const std::string& name = static_cast<size_t>(bit) < mdNames.size() ? mdNames[bit] : std::string();
    std::string bad;
    if (name == "sysv") bad = segment_check::CheckSysv(key, n);
    else if (name == "posix") bad = segment_check::CheckPosix(key, n);
    if (!bad.empty()) return "memory domain " + std::to_string(bit) + " (" + name + "): " + bad;
  }
  return "";
}

}  // namespace peercache
