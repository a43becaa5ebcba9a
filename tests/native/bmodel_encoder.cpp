#include "bmodel_encoder.h"

#include <array>
#include <cstring>
#include <map>
#include <stdexcept>

#include <cryptopp/sha.h>

#include "bmodel_generated.h"
#include "envelope.h"
#include "layout.h"

namespace testing {
namespace {

using namespace bmcrypt;
using Moved = std::map<std::pair<uint64_t, uint64_t>, std::pair<uint64_t, uint64_t>>;

std::vector<uint8_t> seal(const FileKeys& keys, Kind kind, const uint8_t* p, size_t n) {
  std::vector<uint8_t> out(sealed_size(keys, kind, n));
  seal_envelope(keys, kind, ByteView(p, n), out.data());
  return out;
}

// §8.4: the original header and FlatBuffer, and extents placing the original binary region:
// the clear bytes stay where they were (the encoder zeroes the old coeff bytes in place and
// appends the envelopes), each coeff range comes from its envelope.
std::vector<uint8_t> restore_record(const std::vector<uint8_t>& plain, const Moved& moved) {
  const uint32_t fb_size = load_le32(plain.data() + 8);
  const uint64_t body = plain.size() - kPlainHeaderSize - fb_size;
  const uint64_t bin_size = load_le64(plain.data() + 12);
  std::vector<std::array<uint64_t, 4>> extents;  // orig_off, len, new_off, source
  uint64_t at = 0;
  for (const auto& [old, now] : moved) {  // sorted by old offset
    if (old.first < at) throw std::runtime_error("overlapping coeff ranges");
    if (old.first > at) extents.push_back({at, old.first - at, at, 0});
    extents.push_back({old.first, old.second, now.first, 1});
    at = old.first + old.second;
  }
  if (at < bin_size) extents.push_back({at, bin_size - at, at, 0});
  if (body != bin_size) throw std::runtime_error("bytes after the binary region");
  const uint64_t padded = (fb_size + 7) & ~uint64_t(7);
  std::vector<uint8_t> r(120 + padded + 32 * extents.size(), 0);
  CryptoPP::SHA256().CalculateDigest(r.data(), plain.data(), plain.size());
  store_le64(r.data() + 32, plain.size());
  std::memcpy(r.data() + 40, plain.data(), kPlainHeaderSize);
  store_le64(r.data() + 104, fb_size);
  store_le32(r.data() + 112, uint32_t(extents.size()));
  std::memcpy(r.data() + 120, plain.data() + kPlainHeaderSize, fb_size);
  uint8_t* e = r.data() + 120 + padded;
  for (const auto& x : extents) {
    store_le64(e, x[0]);
    store_le64(e + 8, x[1]);
    store_le64(e + 16, x[2]);
    store_le32(e + 24, uint32_t(x[3]));
    e += 32;
  }
  return r;
}

}  // namespace

std::vector<uint8_t> encrypt_bmodel(const std::vector<uint8_t>& plain, const FileKeys& keys, bool typed) {
  if (plain.size() < kPlainHeaderSize || load_le32(plain.data() + 4) != kPlainHeaderSize)
    throw std::runtime_error("not a plain bmodel");
  const uint32_t fb_size = load_le32(plain.data() + 8);
  const uint64_t bin_size = load_le64(plain.data() + 12);
  const uint8_t* fb = plain.data() + kPlainHeaderSize;
  const uint8_t* bin = fb + fb_size;
  std::vector<uint8_t> binary(bin, bin + bin_size);

  std::unique_ptr<bmodel::ModelT> model = bmodel::UnPackModel(fb);
  Moved moved;  // old -> new range
  Ranges encrypted;
  for (auto& net : model->net) {
    for (auto& stage : net->parameter) {
      bmodel::CoeffMemT* coeff = stage->coeff_mem.get();
      if (!coeff || !coeff->binary_coeff || coeff->binary_coeff->size() == 0) continue;
      const auto old = std::make_pair(coeff->binary_coeff->start(), coeff->binary_coeff->size());
      uint8_t digest[32];
      CryptoPP::SHA256().CalculateDigest(digest, bin + old.first, size_t(old.second));
      if (!moved.count(old)) {
        const auto env = seal(keys, typed ? Kind::weights : Kind::generic, bin + old.first, size_t(old.second));
        moved[old] = {binary.size(), env.size()};
        encrypted.push_back(moved[old]);
        binary.insert(binary.end(), env.begin(), env.end());
      }
      coeff->binary_coeff = std::make_unique<bmodel::Binary>(moved[old].first, moved[old].second);
      coeff->encrypt_mode = 1;
      coeff->decrypt_size = old.second;
      coeff->check_code.assign(digest, digest + 32);
    }
  }
  for (const auto& entry : moved) std::memset(binary.data() + entry.first.first, 0, size_t(entry.first.second));
  const bool v2 = keys.version == 2;
  const std::vector<uint8_t> record = v2 ? restore_record(plain, moved) : std::vector<uint8_t>();

  flatbuffers::FlatBufferBuilder builder;
  builder.Finish(bmodel::Model::Pack(builder, model.get()));
  std::vector<uint8_t> e2_plain(builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize());
  if (typed) {
    Manifest m = clear_region_digest(ByteView(binary.data(), binary.size()), encrypted);
    m.flatbuffer_len = e2_plain.size();
    m.version = v2 ? 2 : 1;
    m.restore_len = record.size();
    e2_plain.insert(e2_plain.end(), record.begin(), record.end());
    e2_plain.resize(e2_plain.size() + kManifestSize);
    write_manifest(m, e2_plain.data() + m.flatbuffer_len + m.restore_len);
  }
  const auto e2 = seal(keys, typed ? Kind::flatbuffer : Kind::generic, e2_plain.data(), e2_plain.size());
  uint8_t tail[kHeaderTailSize];
  write_header_tail({uint32_t(e2.size()), binary.size()}, tail);
  const auto e1 = seal(keys, typed ? Kind::header_tail : Kind::generic, tail, sizeof tail);

  std::vector<uint8_t> out(8);
  std::memcpy(out.data(), kBmodelMagic, 4);
  store_le32(out.data() + 4, uint32_t(8 + e1.size()));
  out.insert(out.end(), e1.begin(), e1.end());
  out.insert(out.end(), e2.begin(), e2.end());
  out.insert(out.end(), binary.begin(), binary.end());
  return out;
}

}  // namespace testing
