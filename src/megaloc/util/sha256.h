#pragma once

// SHA-256 of files and buffers (FIPS 180-4), used to pin and record model weights.

#include <cstddef>
#include <cstdint>
#include <string>

namespace megaloc {

// Incremental SHA-256.
class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t size);
  // Lower-case hex digest; the object must not be updated afterwards.
  std::string HexDigest();

 private:
  void Transform(const uint8_t* block);
  uint32_t state_[8];
  uint8_t buffer_[64];
  uint64_t bit_count_ = 0;
  size_t buffer_size_ = 0;
};

std::string Sha256Hex(const void* data, size_t size);
// Throws IoError if the file cannot be read.
std::string Sha256File(const std::string& path);

namespace internal {
// Whether the x86 SHA extensions are used (detected at start-up). SetSha256ShaExtensions(false)
// forces the portable code (tests compare both); returns whether they are used now.
bool Sha256UsesShaExtensions();
bool SetSha256ShaExtensions(bool enabled);
}  // namespace internal

}  // namespace megaloc
