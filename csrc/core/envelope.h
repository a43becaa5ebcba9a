// The envelope of FORMAT.md §3: one encrypted region, self-describing.
//
//   0   "BMCE" | 4 version=1 | 5 algorithm=1 | 6 kind | 7 seg_log2
//   8   plaintext_len (u64 LE)
//   16  file_id (16)                                   } bytes 0..48: the public header,
//   32  region_salt (16)                               } AAD of every segment
//   48  key block (104, keyblock.h)
//   152 segment 0 | segment 1 | ... | segment n-1       each = GCM ciphertext || 16-byte tag
//
// Segment i of n: nonce = i as 11-byte BE || (i == n-1 ? 0x01 : 0x00), key PK (kdf.h).
//
// Version 2 (§8.1): the public header is bytes 0..104 and there is no key block:
//   48  dk_check (16) | 64 key_area_len (u32) | 68 policy (u32) | 72 licence_key (32)
//   104 key area (key_area_len bytes, kind 1 only, recipients.h) | segments
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include "bytes.h"
#include "kdf.h"
#include "keyblock.h"

namespace bmcrypt {

enum class Kind : uint8_t { generic = 0, header_tail = 1, flatbuffer = 2, weights = 3 };

constexpr uint8_t kEnvelopeMagic[4] = {'B', 'M', 'C', 'E'};
constexpr uint8_t kFormatVersion = 1;
constexpr uint8_t kFormatVersion2 = 2;
constexpr uint8_t kAlgorithm = 1;
constexpr size_t kPublicHeaderSize = 48;
constexpr size_t kEnvelopeHeaderSize = kPublicHeaderSize + KeyBlock::kSize;  // 152
constexpr size_t kPublicHeaderSizeV2 = 104;
constexpr uint32_t kPolicyLicence = 1;  // policy bit 0: a licence is required (§8.5)
constexpr size_t kSegmentTagSize = 16;
constexpr unsigned kMinSegLog2 = 12, kMaxSegLog2 = 30, kDefaultSegLog2 = 20;
constexpr uint64_t kMaxPlaintextLen = uint64_t(1) << 40;

struct EnvelopeHeader {
  std::array<uint8_t, kPublicHeaderSizeV2> public_header{};  // the first public_size() bytes
  unsigned version = kFormatVersion;
  Kind kind = Kind::generic;
  unsigned seg_log2 = kDefaultSegLog2;
  uint64_t plaintext_len = 0;
  FileId file_id{};
  FileId region_salt{};
  KeyBlock key_block;  // version 1 only
  // Version 2 only.
  DkCheck dk_check{};
  uint32_t policy = 0;
  std::array<uint8_t, 32> licence_key{};
  std::vector<uint8_t> key_area;  // kind 1: the key area, validated (recipients.h)

  uint64_t segment_size() const { return uint64_t(1) << seg_log2; }
  uint64_t segment_count() const;
  size_t public_size() const { return version == kFormatVersion2 ? kPublicHeaderSizeV2 : kPublicHeaderSize; }
  // Offset of segment 0: 152 in version 1, 104 + key_area_len in version 2.
  size_t payload_offset() const {
    return version == kFormatVersion2 ? kPublicHeaderSizeV2 + key_area.size() : kEnvelopeHeaderSize;
  }
  bool licence_required() const { return (policy & kPolicyLicence) != 0; }
};

// Total envelope length for a plaintext: 152 + plaintext_len + 16 * max(1, ceil(len / S)).
uint64_t envelope_size(uint64_t plaintext_len, unsigned seg_log2);
// Version 2: 104 + key_area_len + plaintext_len + 16 * max(1, ceil(len / S)).
uint64_t envelope_size_v2(uint64_t plaintext_len, unsigned seg_log2, uint64_t key_area_len);

// True when the bytes start with the envelope magic (nothing else is checked).
bool has_envelope_magic(ByteView bytes);

// Parses and checks everything §3.1 (§8.1 for version 2) requires before any allocation or
// decryption, including the exact length and (unless check_key_block is false: the caller
// compares it with a key block it checked) the key block's own limits, or in version 2 the key
// area's (§8.2). Throws Error (truncated, corrupt, unsupported_version).
EnvelopeHeader parse_envelope(ByteView envelope, bool check_key_block = true);

// Decrypts all segments into out[0, plaintext_len), in parallel when there are many. Nothing is
// valid unless every segment authenticated: on failure out is wiped and Error(tampered) thrown.
void open_envelope(const EnvelopeHeader& header, ByteView envelope, const SecretBytes& dk,
                   uint8_t* out);

// Decrypts in order, a window of segments at a time, handing plaintext to sink. For hashing and
// verification only: sink sees early segments before later ones authenticated.
using PlaintextSink = std::function<void(const uint8_t*, size_t)>;
void stream_envelope(const EnvelopeHeader& header, ByteView envelope, const SecretBytes& dk,
                     const PlaintextSink& sink);

// Writes the envelope of plaintext into out[0, sealed_size(keys, kind, ...)) with a fresh region
// salt, in parallel when there are many segments. keys.version chooses the format: version 2
// writes the key area and policy for kind 1 only (kind 0 is refused there).
void seal_envelope(const FileKeys& keys, Kind kind, ByteView plaintext, uint8_t* out,
                   unsigned seg_log2 = kDefaultSegLog2);

// The length seal_envelope writes.
uint64_t sealed_size(const FileKeys& keys, Kind kind, uint64_t plaintext_len,
                     unsigned seg_log2 = kDefaultSegLog2);

// Streaming a large envelope with bounded memory: the segments [first, first + count) of the
// envelope whose public header (48 bytes, or 104 for version 2, whose dk_check must be that of
// keys.dk; its region salt chosen by the writer) is given. A run
// is whole segments, or the rest of the envelope through its last segment. Parallel like the
// whole-envelope calls. Both return the bytes written to out and throw Error(bad_argument) for
// a run that is not one, a header of another file, or an output smaller than the result.
// seal_segments: plaintext of the run -> its records (ciphertext || tag, 16 bytes more each).
size_t seal_segments(const FileKeys& keys, ByteView public_header, uint64_t first,
                     ByteView plaintext, uint8_t* out, size_t out_capacity);
// open_segments: records of the run -> their plaintext; on failure out is wiped and
// Error(tampered) thrown. The caller still owes the rest of the envelope its check.
size_t open_segments(const FileKeys& keys, ByteView public_header, uint64_t first,
                     ByteView records, uint8_t* out, size_t out_capacity);

}  // namespace bmcrypt
