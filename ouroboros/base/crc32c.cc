#include "ouroboros/base/crc32c.h"

#include <nmmintrin.h>

#include <array>
#include <cstring>

namespace ouroboros {
namespace {

constexpr uint32_t kCastagnoliReversed = 0x82F63B78;

std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc >> 1) ^ ((crc & 1) ? kCastagnoliReversed : 0);
    }
    table[i] = crc;
  }
  return table;
}

uint32_t UpdateByTable(uint32_t crc, const unsigned char* data, size_t size) {
  static const std::array<uint32_t, 256> table = MakeCrcTable();
  for (size_t i = 0; i < size; ++i) {
    crc = table[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
  }
  return crc;
}

// SSE 4.2's crc32 instruction computes this very polynomial, 8 bytes at a
// time: about 8x the table's speed (checkpoints are checksummed whole).
__attribute__((target("sse4.2"))) uint32_t UpdateByInstruction(
    uint32_t crc, const unsigned char* data, size_t size) {
  uint64_t crc64 = crc;
  for (; size >= 8; size -= 8, data += 8) {
    uint64_t word;
    std::memcpy(&word, data, 8);
    crc64 = _mm_crc32_u64(crc64, word);
  }
  crc = static_cast<uint32_t>(crc64);
  for (; size > 0; --size, ++data) crc = _mm_crc32_u8(crc, *data);
  return crc;
}

}  // namespace

uint32_t Crc32c(absl::string_view data) {
  static const bool has_instruction = __builtin_cpu_supports("sse4.2");
  const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
  const uint32_t crc = has_instruction
                           ? UpdateByInstruction(0xFFFFFFFF, bytes, data.size())
                           : UpdateByTable(0xFFFFFFFF, bytes, data.size());
  return crc ^ 0xFFFFFFFF;
}

namespace internal {

uint32_t Crc32cByTable(absl::string_view data) {
  return UpdateByTable(0xFFFFFFFF,
                       reinterpret_cast<const unsigned char*>(data.data()),
                       data.size()) ^
         0xFFFFFFFF;
}

}  // namespace internal
}  // namespace ouroboros
