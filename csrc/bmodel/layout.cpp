#include "layout.h"

#include <algorithm>
#include <cstring>

#include <cryptopp/sha.h>

#include "error.h"

namespace bmcrypt {
namespace {

constexpr uint8_t kManifestMagic[4] = {'B', 'M', 'C', 'M'};
constexpr uint32_t kManifestVersion = 1, kManifestVersion2 = 2;

}  // namespace

FileState classify_bmodel(ByteView file) {
  const size_t n = file.size;
  if (n < 8 || std::memcmp(file.data, kBmodelMagic, 4) != 0)
    throw Error(Errc::not_a_bmodel, "not a bmodel (no ee aa 55 ff magic)");
  if (has_envelope_magic(file.sub(8, n - 8))) return FileState::bmcrypt;
  // As far as the file goes: a plain header has zero reserved bytes 20..63.
  const bool zero_reserved = n <= 20 || all_zero(file.data + 20, std::min<size_t>(n, kPlainHeaderSize) - 20);
  return load_le32(file.data + 4) == kPlainHeaderSize && zero_reserved ? FileState::plain
                                                                         : FileState::foreign;
}

HeaderTail parse_header_tail(const uint8_t* p) {
  if (!all_zero(p + 12, kHeaderTailSize - 12))
    throw Error(Errc::corrupt, "the header's reserved bytes are not zero");
  return {load_le32(p), load_le64(p + 4)};
}

void write_header_tail(const HeaderTail& tail, uint8_t* out) {
  std::memset(out, 0, kHeaderTailSize);
  store_le32(out, tail.flatbuffers_size);
  store_le64(out + 4, tail.binary_size);
}

Manifest parse_manifest(ByteView plaintext) {
  if (plaintext.size < kManifestSize) throw Error(Errc::corrupt, "no manifest after the FlatBuffer");
  const uint8_t* p = plaintext.data + plaintext.size - kManifestSize;
  if (std::memcmp(p, kManifestMagic, 4) != 0) throw Error(Errc::corrupt, "bad manifest magic");
  const uint32_t version = load_le32(p + 4);
  if (version != kManifestVersion && version != kManifestVersion2)
    throw Error(Errc::unsupported_version, "manifest version " + std::to_string(version) +
                                               " (this bmcrypt reads 1 and 2)");
  Manifest m;
  m.version = version;
  m.flatbuffer_len = load_le64(p + 8);
  m.clear_len = load_le64(p + 16);
  std::memcpy(m.clear_digest.data(), p + 24, m.clear_digest.size());
  m.restore_len = load_le64(p + 56);
  if (version == kManifestVersion && m.restore_len != 0)
    throw Error(Errc::corrupt, "the manifest's reserved bytes are not zero");
  const uint64_t before = plaintext.size - kManifestSize;
  if (m.restore_len > before || m.flatbuffer_len != before - m.restore_len)
    throw Error(Errc::corrupt, "the manifest's FlatBuffer length does not match");
  return m;
}

void write_manifest(const Manifest& m, uint8_t* out) {
  std::memset(out, 0, kManifestSize);
  std::memcpy(out, kManifestMagic, 4);
  store_le32(out + 4, m.version);
  store_le64(out + 8, m.flatbuffer_len);
  store_le64(out + 16, m.clear_len);
  std::memcpy(out + 24, m.clear_digest.data(), m.clear_digest.size());
  store_le64(out + 56, m.restore_len);
}

Manifest clear_region_digest(ByteView binary, const Ranges& encrypted) {
  Ranges sorted = encrypted;
  std::sort(sorted.begin(), sorted.end());
  CryptoPP::SHA256 sha;
  Manifest m;
  auto span = [&](uint64_t off, uint64_t len) {
    if (len == 0) return;
    uint8_t prefix[16];
    store_le64(prefix, off);
    store_le64(prefix + 8, len);
    sha.Update(prefix, sizeof prefix);
    sha.Update(binary.data + off, size_t(len));
    m.clear_len += len;
  };
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());  // shared envelopes
  uint64_t pos = 0;  // end of what is already covered (clear or encrypted)
  for (const auto& [off, len] : sorted) {
    if (off > binary.size || len > binary.size - off)
      throw Error(Errc::corrupt, "an encrypted range lies outside the binary region");
    if (off < pos) throw Error(Errc::corrupt, "encrypted ranges overlap");
    span(pos, off - pos);
    pos = off + len;
  }
  if (binary.size > pos) span(pos, binary.size - pos);
  sha.Final(m.clear_digest.data());
  return m;
}

}  // namespace bmcrypt
