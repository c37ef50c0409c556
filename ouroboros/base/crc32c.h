// CRC-32C (Castagnoli), as TFRecord (TensorBoard's event files) and our
// checkpoints use it.
//
//   uint32_t crc = Crc32c(payload);
#ifndef OUROBOROS_BASE_CRC32C_H_
#define OUROBOROS_BASE_CRC32C_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace ouroboros {

// With SSE 4.2's crc32 instruction where the CPU has it, else by table.
uint32_t Crc32c(absl::string_view data);

namespace internal {
// The table's result always (for the test that the two agree).
uint32_t Crc32cByTable(absl::string_view data);
}  // namespace internal

}  // namespace ouroboros

#endif  // OUROBOROS_BASE_CRC32C_H_
