// Checks on what a peer hands us before any of it reaches UCX. UCX 1.13 trusts its inputs: a
// worker address with another version nibble trips an assertion (SIGABRT), a packed rkey shorter
// than its md map says is read past its end, and a one-sided READ through a shared-memory rkey at
// an address the segment does not cover is a plain memcpy from wherever it points (SIGSEGV).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "descriptor.h"

namespace peercache {

// --- worker address envelope ----------------------------------------------------------------
// Layout (little endian): 0 u32 magic 'PCWA' | 4 u16 envelope version | 6 u16 reserved |
// 8 char[16] UCX version string (NUL padded) | 24 u32 address bytes | 28 u32 FNV-1a of 0..28 and
// the address | 32 UCX worker address.
constexpr uint32_t kAddressMagic = 0x41574350;  // "PCWA"
constexpr uint16_t kAddressVersion = 1;
constexpr size_t kAddressHeader = 32;
constexpr size_t kUcxVersionChars = 16;
// UCX's own address header: the low 4 bits are its address format version.
constexpr uint8_t kUcxAddressVersionMask = 0x0f;

inline std::string EncodeAddress(const uint8_t* addr, size_t size, const std::string& ucxVersion) {
  std::string out(kAddressHeader + size, '\0');
  uint8_t* p = reinterpret_cast<uint8_t*>(&out[0]);
  uint32_t magic = kAddressMagic, size32 = static_cast<uint32_t>(size);
  uint16_t version = kAddressVersion;
  std::memcpy(p + 0, &magic, 4);
  std::memcpy(p + 4, &version, 2);
  std::memcpy(p + 8, ucxVersion.data(), ucxVersion.size() < kUcxVersionChars ? ucxVersion.size() : kUcxVersionChars - 1);
  std::memcpy(p + 24, &size32, 4);
  std::memcpy(p + kAddressHeader, addr, size);
  uint32_t sum = Fnv1aCont(Fnv1aCont(kFnvBasis, p, 28), addr, size);
  std::memcpy(p + 28, &sum, 4);
  return out;
}

// Returns "" and the inner UCX address, or why the blob cannot be a worker address we can use.
// `ownUcxHeader` is the first byte of this process's own UCX worker address.
inline std::string DecodeAddress(const uint8_t* p, size_t size, const std::string& ucxVersion, uint8_t ownUcxHeader,
                                 const uint8_t** inner, size_t* innerSize) {
  if (size < kAddressHeader + 1) return "too short (" + std::to_string(size) + " bytes) to be a peercache worker address";
  uint32_t magic, size32, sum;
  uint16_t version;
  std::memcpy(&magic, p + 0, 4);
  std::memcpy(&version, p + 4, 2);
  std::memcpy(&size32, p + 24, 4);
  std::memcpy(&sum, p + 28, 4);
  if (magic != kAddressMagic) return "bad magic (not a peercache worker address)";
  if (version != kAddressVersion) return "unsupported worker address envelope version " + std::to_string(version);
  if (static_cast<size_t>(size32) + kAddressHeader != size) return "address length does not match the blob size";
  if (Fnv1aCont(Fnv1aCont(kFnvBasis, p, 28), p + kAddressHeader, size32) != sum) return "checksum mismatch (damaged or forged address)";
  char peerVersion[kUcxVersionChars + 1] = {0};
  std::memcpy(peerVersion, p + 8, kUcxVersionChars);
  peerVersion[kUcxVersionChars - 1] = '\0';
  if (ucxVersion != peerVersion) {
    return std::string("the peer runs UCX ") + peerVersion + " and this process UCX " + ucxVersion +
           ": UCX worker addresses are only understood by the same UCX version (install the same UCX on both hosts, or point PEERCACHE_LIBUCP at it)";
  }
  const uint8_t* a = p + kAddressHeader;
  if ((a[0] & kUcxAddressVersionMask) != (ownUcxHeader & kUcxAddressVersionMask)) {
    return "UCX address format " + std::to_string(a[0] & kUcxAddressVersionMask) + " differs from this process's " +
           std::to_string(ownUcxHeader & kUcxAddressVersionMask);
  }
  *inner = a;
  *innerSize = size32;
  return "";
}

// --- packed rkey -----------------------------------------------------------------------------
// UCX 1.13 packs an rkey as: u64 md map | u8 memory type | per md bit: u8 size, that many bytes |
// optionally u8 system device and 3 bytes per device distance. Checked for structure, so that
// ucp_ep_rkey_unpack never reads past the blob.
inline std::string CheckPackedRkey(const uint8_t* p, size_t size) {
  if (size < 9) return "packed rkey of " + std::to_string(size) + " bytes is shorter than its 9-byte header";
  uint64_t mdMap;
  std::memcpy(&mdMap, p, 8);
  if (mdMap == 0) return "packed rkey names no memory domain";
  if (p[8] > 16) return "packed rkey has an unknown memory type " + std::to_string(p[8]);
  size_t off = 9;
  for (int bit = 0; bit < 64; ++bit) {
    if ((mdMap & (uint64_t{1} << bit)) == 0) continue;
    if (off >= size) return "packed rkey ends before memory domain " + std::to_string(bit);
    off += 1 + static_cast<size_t>(p[off]);
    if (off > size) return "packed rkey's memory domain " + std::to_string(bit) + " runs past its end";
  }
  size_t rest = size - off;
  if (rest != 0 && (rest - 1) % 3 != 0) return "packed rkey has " + std::to_string(rest) + " trailing bytes";
  return "";
}

// --- mapped range ----------------------------------------------------------------------------
// True when [ptr, ptr+length) lies in readable mappings of this process, with no hole: where a
// shared-memory rkey maps the peer's segment into this process, a READ is a memcpy from there.
inline bool ReadableRange(const void* ptr, uint64_t length) {
  uintptr_t lo = reinterpret_cast<uintptr_t>(ptr);
  uintptr_t hi = lo + length;
  if (length == 0 || hi < lo) return false;
  FILE* maps = std::fopen("/proc/self/maps", "r");
  if (maps == nullptr) return false;
  char line[512];
  uintptr_t covered = lo;
  bool ok = false;
  while (std::fgets(line, sizeof line, maps) != nullptr) {
    unsigned long start = 0, end = 0;
    char perms[5] = {0};
    if (std::sscanf(line, "%lx-%lx %4s", &start, &end, perms) != 3) continue;
    if (end <= covered) continue;
    if (start > covered) break;  // a hole (maps are sorted)
    if (perms[0] != 'r') break;
    covered = end;
    if (covered >= hi) {
      ok = true;
      break;
    }
  }
  std::fclose(maps);
  return ok;
}

}  // namespace peercache
