// The restore record of a version 2 FlatBuffer envelope (FORMAT.md §8.4): how to rebuild the
// original plain file byte for byte from the encrypted one.
//
//   0 SHA-256 of the original (32) | 32 its length (u64) | 40 its first 64 bytes
//   104 orig_fb_len (u64) | 112 m (u32) | 116 zero (u32) | 120 the original FlatBuffer
//   ... zero padding to a multiple of 8 | m extents of 32 bytes:
//       u64 orig_off | u64 len | u64 new_off | u32 source (0 clear, 1 weight envelope) | u32 zero
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "bytes.h"
#include "layout.h"
#include "weights.h"

namespace bmcrypt {

struct RestoreExtent {
  uint64_t orig_off = 0, len = 0, new_off = 0;
  uint32_t source = 0;
};

struct RestoreRecord {
  std::array<uint8_t, 32> sha256{};
  uint64_t length = 0;
  ByteView header;           // 64 bytes
  ByteView flatbuffer;       // the original FlatBuffer
  std::vector<RestoreExtent> extents;
  uint64_t body_len() const;  // length - 64 - flatbuffer.size
};

// Parses the record and checks its own layout (lengths, zero bytes and padding, non-empty
// extents sorted and tiling the body). Throws Error(corrupt).
RestoreRecord parse_restore_record(ByteView record);

// The rules that need the encrypted file (§8.4): a source 0 extent lies within the clear spans
// of the binary region (region_size bytes, minus the sealed regions); a source 1 extent starts
// where a sealed region starts and has its plaintext length, and every sealed region is the
// source of exactly one extent (the rules of bmcrypt/protect/restore.py). Throws Error(corrupt).
void check_restore_extents(const RestoreRecord& record, uint64_t region_size,
                           const std::vector<SealedRegion>& sealed);

}  // namespace bmcrypt
