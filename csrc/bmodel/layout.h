// The bmodel file around the envelopes (FORMAT.md §2, §5): the clear 8 bytes, the 56-byte header
// tail inside E1, the manifest at the end of E2's plaintext, and the clear-region digest.
#pragma once
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "bytes.h"
#include "envelope.h"

namespace bmcrypt {

constexpr uint8_t kBmodelMagic[4] = {0xee, 0xaa, 0x55, 0xff};
constexpr size_t kPlainHeaderSize = 64;
constexpr size_t kHeaderTailSize = 56;
constexpr size_t kManifestSize = 64;
// 8 clear bytes + the smallest envelope of a 56-byte header tail (§6 step 1).
constexpr uint64_t kMinEncryptedHeaderSize = 8 + kEnvelopeHeaderSize + kHeaderTailSize + kSegmentTagSize;

enum class FileState { plain, bmcrypt, foreign };

// What the first bytes say, without a key (§2, last paragraph). Throws Error(not_a_bmodel).
FileState classify_bmodel(ByteView file);

// {u32 flatbuffers_size, u64 binary_size, 44 zero bytes}
struct HeaderTail {
  uint32_t flatbuffers_size = 0;
  uint64_t binary_size = 0;
};
// Throws Error(corrupt) unless the 44 reserved bytes are zero.
HeaderTail parse_header_tail(const uint8_t* p);
void write_header_tail(const HeaderTail& tail, uint8_t* out);

//   0 "BMCM" | 4 version (u32) | 8 flatbuffer_len | 16 clear_len | 24 clear_digest (32)
//   56 zero (version 1) or restore_len (version 2, §8.4)
// E2's plaintext is FlatBuffer || restore record (restore_len bytes) || manifest.
struct Manifest {
  uint32_t version = 1;
  uint64_t flatbuffer_len = 0;
  uint64_t clear_len = 0;
  std::array<uint8_t, 32> clear_digest{};
  uint64_t restore_len = 0;
};
// The last 64 bytes of E2's plaintext. Throws corrupt / unsupported_version.
Manifest parse_manifest(ByteView e2_plaintext);
void write_manifest(const Manifest& manifest, uint8_t* out);

// Byte ranges {offset, length} relative to the start of the binary region.
using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;

// SHA-256 over every clear span (the binary region minus the encrypted ranges, as maximal runs in
// offset order) of u64 off || u64 len || bytes; clear_len = the bytes covered (§5). A range listed
// twice counts once; ranges outside the region or overlapping each other are Error(corrupt).
Manifest clear_region_digest(ByteView binary, const Ranges& encrypted);

}  // namespace bmcrypt
