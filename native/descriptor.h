// The region descriptor a publisher hands to readers: a small framed, checksummed blob around UCX's
// packed rkey. Layout (little endian):
//   0  u32 magic 'PCRD'   4  u16 version (1)   6  u16 reserved
//   8  u64 base address  16  u64 length        24  u32 rkey bytes   28  u32 FNV-1a of bytes 0..28 and the rkey
//  32  rkey bytes
// The checksum catches damage to any field (base and length included); it is no signature: a
// hostile peer can forge a consistent blob, so attach() also checks the range the rkey maps.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace peercache {

constexpr uint32_t kDescriptorMagic = 0x44524350;  // "PCRD"
constexpr uint16_t kDescriptorVersion = 2;
constexpr size_t kDescriptorHeader = 32;

constexpr uint32_t kFnvBasis = 2166136261u;

// FNV-1a, continued from `h` (start with kFnvBasis).
inline uint32_t Fnv1aCont(uint32_t h, const uint8_t* data, size_t size) {
  for (size_t i = 0; i < size; ++i) {
    h ^= data[i];
    h *= 16777619u;
  }
  return h;
}

inline uint32_t DescriptorSum(const uint8_t* header, const uint8_t* rkey, size_t rkeySize) {
  return Fnv1aCont(Fnv1aCont(kFnvBasis, header, 28), rkey, rkeySize);
}

inline std::string EncodeDescriptor(uint64_t base, uint64_t length, const uint8_t* rkey, size_t rkeySize) {
  std::string out(kDescriptorHeader + rkeySize, '\0');
  uint8_t* p = reinterpret_cast<uint8_t*>(&out[0]);
  uint32_t magic = kDescriptorMagic;
  uint16_t version = kDescriptorVersion;
  uint32_t size32 = static_cast<uint32_t>(rkeySize);
  std::memcpy(p + 0, &magic, 4);
  std::memcpy(p + 4, &version, 2);
  std::memcpy(p + 8, &base, 8);
  std::memcpy(p + 16, &length, 8);
  std::memcpy(p + 24, &size32, 4);
  std::memcpy(p + kDescriptorHeader, rkey, rkeySize);
  uint32_t sum = DescriptorSum(p, rkey, rkeySize);
  std::memcpy(p + 28, &sum, 4);
  return out;
}

struct DecodedDescriptor {
  uint64_t base = 0;
  uint64_t length = 0;
  const uint8_t* rkey = nullptr;
  size_t rkeySize = 0;
};

// Returns an empty string on success, else why the blob is not a valid descriptor.
inline std::string DecodeDescriptor(const uint8_t* p, size_t size, DecodedDescriptor* out) {
  if (size < kDescriptorHeader) return "too short (" + std::to_string(size) + " bytes)";
  uint32_t magic, size32, sum;
  uint16_t version;
  std::memcpy(&magic, p + 0, 4);
  std::memcpy(&version, p + 4, 2);
  std::memcpy(&out->base, p + 8, 8);
  std::memcpy(&out->length, p + 16, 8);
  std::memcpy(&size32, p + 24, 4);
  std::memcpy(&sum, p + 28, 4);
  if (magic != kDescriptorMagic) return "bad magic (not a peercache region descriptor)";
  if (version != kDescriptorVersion) return "unsupported descriptor version " + std::to_string(version);
  if (size32 == 0 || kDescriptorHeader + size32 != size) return "rkey length does not match the blob size";
  if (out->length == 0) return "zero-length region";
  if (out->base + out->length < out->base) return "region wraps around the address space";
  out->rkey = p + kDescriptorHeader;
  out->rkeySize = size32;
  if (DescriptorSum(p, out->rkey, out->rkeySize) != sum) return "checksum mismatch (damaged or forged blob)";
  return "";
}

}  // namespace peercache
