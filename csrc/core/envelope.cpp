#include "envelope.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include <cryptopp/aes.h>
#include <cryptopp/gcm.h>

#include "error.h"
#include "parallel.h"
#include "recipients.h"

namespace bmcrypt {
namespace {

// Crypto++ picks AES-NI and PCLMUL at run time; the 2K and 64K GHASH tables measured the same
// with PCLMUL (tests/native/bench_decrypt.cpp), and 2K is cheaper to key per thread.
using Gcm = CryptoPP::GCM<CryptoPP::AES, CryptoPP::GCM_2K_Tables>;
constexpr size_t kNonceSize = 12;

// Crypto++ runs GHASH and CTR as two passes over whatever it is handed. Handing it a segment in
// 16 KiB pieces keeps the second pass in the L1/L2 cache: on a 256 MiB envelope one core went
// from 2.75 to 3.11 GB/s and 3.09 to 3.50 GB/s in two runs of tests/native/bench_decrypt.cpp
// (OpenSSL EVP on the same loop: 3.55); in-cache speed is unchanged.
constexpr size_t kCipherPiece = 16 << 10;

void segment_nonce(uint64_t index, bool last, uint8_t nonce[kNonceSize]) {
  std::memset(nonce, 0, kNonceSize);
  for (int b = 0; b < 8; ++b) nonce[10 - b] = uint8_t(index >> (8 * b));
  nonce[11] = last ? 1 : 0;
}

// Where segment i lives in the plaintext and in the envelope.
struct SegmentLayout {
  uint64_t plaintext_len, size, count, header;

  explicit SegmentLayout(uint64_t len, unsigned seg_log2, uint64_t header_len = kEnvelopeHeaderSize)
      : plaintext_len(len), size(uint64_t(1) << seg_log2),
        count(std::max<uint64_t>(1, (len + size - 1) >> seg_log2)), header(header_len) {}
  explicit SegmentLayout(const EnvelopeHeader& h)
      : SegmentLayout(h.plaintext_len, h.seg_log2, h.payload_offset()) {}
  uint64_t plain_offset(uint64_t i) const { return i * size; }
  uint64_t plain_len(uint64_t i) const { return std::min(size, plaintext_len - i * size); }
  uint64_t sealed_offset(uint64_t i) const { return header + i * (size + kSegmentTagSize); }
  bool last(uint64_t i) const { return i + 1 == count; }
};

// One thread's GCM state, keyed once with PK; each segment only resynchronises the nonce.
template <class Direction>
class SegmentCipher {
 public:
  SegmentCipher(const SecretBytes& pk, const uint8_t* aad, size_t aad_len)
      : aad_(aad), aad_len_(aad_len) {
    uint8_t nonce[kNonceSize] = {};
    gcm_.SetKeyWithIV(pk.data(), pk.size(), nonce, kNonceSize);
  }

 protected:
  // A new message under the same key: its nonce, the lengths GCM commits to, then the AAD.
  void start(const uint8_t nonce[kNonceSize], size_t n) {
    gcm_.Resynchronize(nonce, kNonceSize);
    gcm_.SpecifyDataLengths(aad_len_, n, 0);
    gcm_.Update(aad_, aad_len_);
  }

  Direction gcm_;
  const uint8_t* aad_;
  size_t aad_len_;
};

class SegmentOpener : SegmentCipher<Gcm::Decryption> {
 public:
  using SegmentCipher::SegmentCipher;
  bool open(const SegmentLayout& l, uint64_t i, const uint8_t* envelope, uint8_t* plaintext) {
    return open_record(l, i, envelope + l.sealed_offset(i), plaintext);
  }
  bool open_record(const SegmentLayout& l, uint64_t i, const uint8_t* sealed, uint8_t* plaintext) {
    uint8_t nonce[kNonceSize];
    segment_nonce(i, l.last(i), nonce);
    const size_t n = size_t(l.plain_len(i));
    start(nonce, n);
    for (size_t at = 0; at < n; at += kCipherPiece)
      gcm_.ProcessData(plaintext + at, sealed + at, std::min(kCipherPiece, n - at));
    return gcm_.TruncatedVerify(sealed + n, kSegmentTagSize);
  }
};

class SegmentSealer : SegmentCipher<Gcm::Encryption> {
 public:
  using SegmentCipher::SegmentCipher;
  void seal(const SegmentLayout& l, uint64_t i, const uint8_t* plaintext, uint8_t* envelope) {
    seal_record(l, i, plaintext + l.plain_offset(i), envelope + l.sealed_offset(i));
  }
  void seal_record(const SegmentLayout& l, uint64_t i, const uint8_t* plaintext, uint8_t* sealed) {
    uint8_t nonce[kNonceSize];
    segment_nonce(i, l.last(i), nonce);
    const size_t n = size_t(l.plain_len(i));
    start(nonce, n);
    for (size_t at = 0; at < n; at += kCipherPiece)
      gcm_.ProcessData(sealed + at, plaintext + at, std::min(kCipherPiece, n - at));
    gcm_.TruncatedFinal(sealed + n, kSegmentTagSize);
  }
};

// Opens segments [first, first + count) into out (which holds segment `first` at offset 0).
bool open_segments(const EnvelopeHeader& h, const SegmentLayout& l, const SecretBytes& pk,
                   const uint8_t* envelope, uint64_t first, uint64_t count, uint8_t* out) {
  const uint64_t base = l.plain_offset(first);
  return for_each_item(count, [&]() -> ItemWorker {
    auto opener = std::make_shared<SegmentOpener>(pk, h.public_header.data(), h.public_size());
    return [&, opener](uint64_t i) {
      const uint64_t seg = first + i;
      return opener->open(l, seg, envelope, out + (l.plain_offset(seg) - base));
    };
  });
}

// The fields of a public header a streaming call was handed (the caller made or parsed it): 48
// bytes of a version 1 envelope or 104 of a version 2 one (whose dk_check must be keys.dk's).
EnvelopeHeader public_fields(ByteView pub, const FileKeys& keys) {
  const bool v2 = pub.size == kPublicHeaderSizeV2;
  if ((pub.size != kPublicHeaderSize && !v2) || !has_envelope_magic(pub) ||
      pub.data[4] != (v2 ? kFormatVersion2 : kFormatVersion) || pub.data[5] != kAlgorithm ||
      pub.data[6] > uint8_t(Kind::weights))
    throw Error(Errc::bad_argument,
                "not the public header of an envelope (48 bytes of version 1, 104 of version 2)");
  EnvelopeHeader h;
  h.version = v2 ? kFormatVersion2 : kFormatVersion;
  std::memcpy(h.public_header.data(), pub.data, pub.size);
  h.kind = Kind(pub.data[6]);
  h.seg_log2 = pub.data[7];
  h.plaintext_len = load_le64(pub.data + 8);
  envelope_size(h.plaintext_len, h.seg_log2);  // range checks
  std::memcpy(h.file_id.data(), pub.data + 16, kFileIdSize);
  std::memcpy(h.region_salt.data(), pub.data + 32, kFileIdSize);
  if (h.file_id != keys.file_id) throw Error(Errc::bad_argument, "the envelope is of another file");
  if (keys.dk.size() != kKeySize) throw Error(Errc::bad_argument, "no data key");
  if (v2) {
    std::memcpy(h.dk_check.data(), pub.data + 48, h.dk_check.size());
    const DkCheck mine = dk_check(keys.dk.data(), keys.file_id);
    if (!equal_ct(mine.data(), h.dk_check.data(), mine.size()))
      throw Error(Errc::bad_argument, "the envelope's dk_check is not that of this data key");
  }
  return h;
}

// How many segments from `first` a run of `bytes` bytes holds (records carry `overhead` more).
uint64_t segment_run(const SegmentLayout& l, uint64_t first, uint64_t bytes, uint64_t overhead) {
  if (first >= l.count) throw Error(Errc::bad_argument, "segment index past the envelope's end");
  const uint64_t rest = l.plaintext_len - std::min(l.plaintext_len, l.plain_offset(first)) +
                        overhead * (l.count - first);
  if (bytes == rest) return l.count - first;
  const uint64_t record = l.size + overhead;
  if (bytes == 0 || bytes % record != 0 || bytes / record >= l.count - first)
    throw Error(Errc::bad_argument, "not a run of whole segments");
  return bytes / record;
}

[[noreturn]] void truncated(const char* what) {
  throw Error(Errc::truncated, std::string("envelope truncated: ") + what);
}

}  // namespace

uint64_t EnvelopeHeader::segment_count() const { return SegmentLayout(plaintext_len, seg_log2).count; }

uint64_t envelope_size(uint64_t plaintext_len, unsigned seg_log2) {
  if (plaintext_len > kMaxPlaintextLen || seg_log2 < kMinSegLog2 || seg_log2 > kMaxSegLog2)
    throw Error(Errc::bad_argument, "plaintext too large or segment size out of range");
  const SegmentLayout l(plaintext_len, seg_log2);
  return kEnvelopeHeaderSize + plaintext_len + kSegmentTagSize * l.count;
}

uint64_t envelope_size_v2(uint64_t plaintext_len, unsigned seg_log2, uint64_t key_area_len) {
  return envelope_size(plaintext_len, seg_log2) - kEnvelopeHeaderSize + kPublicHeaderSizeV2 +
         key_area_len;
}

uint64_t sealed_size(const FileKeys& keys, Kind kind, uint64_t plaintext_len, unsigned seg_log2) {
  if (keys.version != kFormatVersion2) return envelope_size(plaintext_len, seg_log2);
  return envelope_size_v2(plaintext_len, seg_log2, kind == Kind::header_tail ? keys.key_area.size() : 0);
}

bool has_envelope_magic(ByteView bytes) {
  return bytes.data && bytes.size >= 4 && std::memcmp(bytes.data, kEnvelopeMagic, 4) == 0;
}

namespace {

// §8.1: the version 2 fields after the common ones, each refused as soon as it is present.
void parse_v2_fields(const uint8_t* p, size_t n, EnvelopeHeader& h) {
  if (h.kind == Kind::generic) throw Error(Errc::corrupt, "a version 2 envelope of kind 0");
  const bool e1 = h.kind == Kind::header_tail;
  if (n < 68) truncated("shorter than its header");
  const uint32_t area = load_le32(p + 64);
  if (e1 ? !valid_key_area_len(area) : area != 0)
    throw Error(Errc::corrupt, e1 ? "the key area length is not 16 + 128 x slots (1..255)"
                                  : "a key area outside the header envelope");
  if (n < 72) truncated("shorter than its header");
  h.policy = load_le32(p + 68);
  if (!e1 && h.policy != 0) throw Error(Errc::corrupt, "a policy outside the header envelope");
  if (h.policy & ~kPolicyLicence)
    throw Error(Errc::unsupported_version, "unknown policy bits in the envelope header");
  if (n < kPublicHeaderSizeV2) truncated("shorter than its header");
  std::memcpy(h.dk_check.data(), p + 48, h.dk_check.size());
  std::memcpy(h.licence_key.data(), p + 72, h.licence_key.size());
  const bool no_licence_key = all_zero(p + 72, h.licence_key.size());
  if (!e1 && !no_licence_key) throw Error(Errc::corrupt, "a licence key outside the header envelope");
  if (h.licence_required() && no_licence_key)
    throw Error(Errc::corrupt, "a licence is required but no licence key is given");
  if (!h.licence_required() && !no_licence_key)
    throw Error(Errc::corrupt, "a licence key without the licence policy");
  if (n < kPublicHeaderSizeV2 + uint64_t(area)) truncated("shorter than its key area");
  h.key_area.assign(p + kPublicHeaderSizeV2, p + kPublicHeaderSizeV2 + area);
}

}  // namespace

EnvelopeHeader parse_envelope(ByteView env, bool check_key_block) {
  if (!env.data && env.size) throw Error(Errc::bad_argument, "no envelope bytes");
  const uint8_t* p = env.data;
  const size_t n = env.size;
  if (n && std::memcmp(p, kEnvelopeMagic, std::min<size_t>(n, 4)) != 0)
    throw Error(Errc::corrupt, "not a bmcrypt envelope (no BMCE magic)");
  if (n < 5) truncated("no header");
  if (p[4] != kFormatVersion && p[4] != kFormatVersion2)
    throw Error(Errc::unsupported_version,
                "envelope format version " + std::to_string(p[4]) + " (this bmcrypt reads 1 and 2)");
  if (n < 6) truncated("no header");
  if (p[5] != kAlgorithm)
    throw Error(Errc::unsupported_version, "unknown envelope algorithm " + std::to_string(p[5]));
  if (n < 7) truncated("no header");
  if (p[6] > uint8_t(Kind::weights))
    throw Error(Errc::unsupported_version, "unknown envelope kind " + std::to_string(p[6]));
  if (n < 8) truncated("no header");
  if (p[7] < kMinSegLog2 || p[7] > kMaxSegLog2)
    throw Error(Errc::corrupt, "envelope segment size out of range");
  if (n >= 16 && load_le64(p + 8) > kMaxPlaintextLen)
    throw Error(Errc::corrupt, "envelope declares more than 2^40 bytes");

  EnvelopeHeader h;
  h.version = p[4];
  h.kind = Kind(p[6]);
  h.seg_log2 = p[7];
  uint64_t expected = 0;
  if (h.version == kFormatVersion2) {
    parse_v2_fields(p, n, h);
    h.plaintext_len = load_le64(p + 8);
    expected = envelope_size_v2(h.plaintext_len, h.seg_log2, h.key_area.size());
  } else {
    if (n < kEnvelopeHeaderSize) truncated("shorter than its header");
    h.plaintext_len = load_le64(p + 8);
    h.key_block = KeyBlock(p + kPublicHeaderSize);
    expected = envelope_size(h.plaintext_len, h.seg_log2);
  }
  std::memcpy(h.public_header.data(), p, h.public_size());
  std::memcpy(h.file_id.data(), p + 16, kFileIdSize);
  std::memcpy(h.region_salt.data(), p + 32, kFileIdSize);
  if (n < expected) truncated("shorter than its declared length");
  if (n > expected) throw Error(Errc::corrupt, "envelope longer than its declared length");
  if (h.version == kFormatVersion2) {
    if (h.kind == Kind::header_tail) validate_key_area(ByteView(h.key_area.data(), h.key_area.size()));
  } else if (check_key_block) {
    validate_key_block(h.key_block);
  }
  return h;
}

void open_envelope(const EnvelopeHeader& h, ByteView env, const SecretBytes& dk, uint8_t* out) {
  const SegmentLayout l(h);
  const SecretBytes pk = payload_key(dk.data(), h.region_salt, h.version);
  bool ok = false;
  try {
    ok = open_segments(h, l, pk, env.data, 0, l.count, out);
  } catch (...) {
    wipe(out, size_t(h.plaintext_len));
    throw;
  }
  if (!ok) {
    wipe(out, size_t(h.plaintext_len));
    throw Error(Errc::tampered, "envelope does not authenticate");
  }
}

void stream_envelope(const EnvelopeHeader& h, ByteView env, const SecretBytes& dk,
                     const PlaintextSink& sink) {
  const SegmentLayout l(h);
  const SecretBytes pk = payload_key(dk.data(), h.region_salt, h.version);
  // A few segments per thread keeps thread start-up cheap; 64 MiB bounds the memory.
  const uint64_t by_memory = std::max<uint64_t>(1, (uint64_t(64) << 20) >> h.seg_log2);
  const uint64_t window = std::min<uint64_t>({l.count, by_memory, uint64_t(max_threads()) * 4});
  SecretBytes buffer(size_t(std::min<uint64_t>(h.plaintext_len, window * l.size)));
  for (uint64_t first = 0; first < l.count; first += window) {
    const uint64_t count = std::min(window, l.count - first);
    if (!open_segments(h, l, pk, env.data, first, count, buffer.data()))
      throw Error(Errc::tampered, "envelope does not authenticate");
    const uint64_t begin = l.plain_offset(first);
    const uint64_t end = std::min(h.plaintext_len, l.plain_offset(first + count));
    sink(buffer.data(), size_t(end - begin));
  }
}

void seal_envelope(const FileKeys& keys, Kind kind, ByteView plaintext, uint8_t* out,
                   unsigned seg_log2) {
  if (keys.dk.size() != kKeySize) throw Error(Errc::bad_argument, "no data key to seal with");
  if (!plaintext.data && plaintext.size) throw Error(Errc::bad_argument, "no plaintext bytes");
  const bool v2 = keys.version == kFormatVersion2;
  if (v2 && kind == Kind::generic) throw Error(Errc::bad_argument, "version 2 has no kind 0");
  if (v2 && kind == Kind::header_tail && !valid_key_area_len(keys.key_area.size()))
    throw Error(Errc::bad_argument, "a version 2 header envelope needs a key area");
  sealed_size(keys, kind, plaintext.size, seg_log2);  // range checks

  EnvelopeHeader h;
  h.version = v2 ? kFormatVersion2 : kFormatVersion;
  uint8_t* p = h.public_header.data();
  std::memcpy(p, kEnvelopeMagic, 4);
  p[4] = uint8_t(h.version);
  p[5] = kAlgorithm;
  p[6] = uint8_t(kind);
  p[7] = uint8_t(seg_log2);
  store_le64(p + 8, plaintext.size);
  std::memcpy(p + 16, keys.file_id.data(), kFileIdSize);
  random_bytes(p + 32, kFileIdSize);
  std::memcpy(h.region_salt.data(), p + 32, kFileIdSize);
  h.plaintext_len = plaintext.size;
  h.seg_log2 = seg_log2;
  if (v2) {
    std::memcpy(p + 48, keys.dk_check.data(), keys.dk_check.size());
    if (kind == Kind::header_tail) {
      h.key_area = keys.key_area;
      store_le32(p + 64, uint32_t(h.key_area.size()));
      store_le32(p + 68, keys.policy);
      std::memcpy(p + 72, keys.licence_key.data(), keys.licence_key.size());
    }
    std::memcpy(out, p, kPublicHeaderSizeV2);
    if (!h.key_area.empty()) std::memcpy(out + kPublicHeaderSizeV2, h.key_area.data(), h.key_area.size());
  } else {
    std::memcpy(out, p, kPublicHeaderSize);
    std::memcpy(out + kPublicHeaderSize, keys.key_block.data(), KeyBlock::kSize);
  }

  const SegmentLayout l(h);
  const SecretBytes pk = payload_key(keys.dk.data(), h.region_salt, h.version);
  for_each_item(l.count, [&]() -> ItemWorker {
    auto sealer = std::make_shared<SegmentSealer>(pk, h.public_header.data(), h.public_size());
    return [&, sealer](uint64_t i) {
      sealer->seal(l, i, plaintext.data, out);
      return true;
    };
  });
}

size_t seal_segments(const FileKeys& keys, ByteView public_header, uint64_t first,
                     ByteView plaintext, uint8_t* out, size_t out_capacity) {
  const EnvelopeHeader h = public_fields(public_header, keys);
  const SegmentLayout l(h.plaintext_len, h.seg_log2);
  const uint64_t count = segment_run(l, first, plaintext.size, 0);
  const size_t written = plaintext.size + size_t(count) * kSegmentTagSize;
  if (out_capacity < written || (!plaintext.data && plaintext.size))
    throw Error(Errc::bad_argument, "output buffer too small");
  const SecretBytes pk = payload_key(keys.dk.data(), h.region_salt, h.version);
  for_each_item(count, [&]() -> ItemWorker {
    auto sealer = std::make_shared<SegmentSealer>(pk, h.public_header.data(), h.public_size());
    return [&, sealer](uint64_t i) {
      sealer->seal_record(l, first + i, plaintext.data + i * l.size,
                          out + i * (l.size + kSegmentTagSize));
      return true;
    };
  });
  return written;
}

size_t open_segments(const FileKeys& keys, ByteView public_header, uint64_t first,
                     ByteView records, uint8_t* out, size_t out_capacity) {
  const EnvelopeHeader h = public_fields(public_header, keys);
  const SegmentLayout l(h.plaintext_len, h.seg_log2);
  const uint64_t count = segment_run(l, first, records.size, kSegmentTagSize);
  const size_t written = records.size - size_t(count) * kSegmentTagSize;
  if (out_capacity < written || (!records.data && records.size))
    throw Error(Errc::bad_argument, "output buffer too small");
  const SecretBytes pk = payload_key(keys.dk.data(), h.region_salt, h.version);
  bool ok = false;
  try {
    ok = for_each_item(count, [&]() -> ItemWorker {
      auto opener = std::make_shared<SegmentOpener>(pk, h.public_header.data(), h.public_size());
      return [&, opener](uint64_t i) {
        return opener->open_record(l, first + i, records.data + i * (l.size + kSegmentTagSize),
                                   out + i * l.size);
      };
    });
  } catch (...) {
    wipe(out, written);
    throw;
  }
  if (!ok) {
    wipe(out, written);
    throw Error(Errc::tampered, "envelope does not authenticate");
  }
  return written;
}

}  // namespace bmcrypt
