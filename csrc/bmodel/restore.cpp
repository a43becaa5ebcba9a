#include "restore.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "error.h"

namespace bmcrypt {
namespace {

constexpr size_t kFixedSize = 120, kExtentSize = 32;

[[noreturn]] void corrupt(const std::string& what) {
  throw Error(Errc::corrupt, "restore record: " + what);
}

}  // namespace

uint64_t RestoreRecord::body_len() const { return length - kPlainHeaderSize - flatbuffer.size; }

RestoreRecord parse_restore_record(ByteView rec) {
  if (rec.size < kFixedSize) corrupt("shorter than its fixed fields");
  const uint8_t* p = rec.data;
  RestoreRecord r;
  std::memcpy(r.sha256.data(), p, r.sha256.size());
  r.length = load_le64(p + 32);
  r.header = rec.sub(40, kPlainHeaderSize);
  const uint64_t fb_len = load_le64(p + 104);
  const uint32_t m = load_le32(p + 112);
  if (load_le32(p + 116) != 0) corrupt("non-zero reserved bytes");
  if (fb_len > rec.size - kFixedSize) corrupt("the original FlatBuffer overruns the record");
  const uint64_t padded = (fb_len + 7) & ~uint64_t(7);
  const uint64_t extents_at = kFixedSize + padded;
  if (extents_at > rec.size || (rec.size - extents_at) != uint64_t(m) * kExtentSize)
    corrupt("its length does not match its FlatBuffer and extent count");
  if (!all_zero(p + kFixedSize + fb_len, size_t(padded - fb_len))) corrupt("non-zero padding");
  r.flatbuffer = rec.sub(kFixedSize, size_t(fb_len));
  if (r.length < kPlainHeaderSize + fb_len) corrupt("the original is shorter than its header and FlatBuffer");
  const uint64_t body = r.body_len();
  uint64_t at = 0;
  for (uint32_t i = 0; i < m; ++i) {
    const uint8_t* e = p + extents_at + kExtentSize * i;
    RestoreExtent x{load_le64(e), load_le64(e + 8), load_le64(e + 16), load_le32(e + 24)};
    if (load_le32(e + 28) != 0) corrupt("an extent with non-zero reserved bytes");
    if (x.source > 1) corrupt("an extent of unknown source " + std::to_string(x.source));
    if (x.orig_off != at || x.len == 0)
      corrupt("the extents are not sorted or do not tile the original body");
    if (x.len > body - at) corrupt("an extent past the end of the original body");
    at += x.len;
    r.extents.push_back(x);
  }
  if (at != body) corrupt("the extents do not cover the original body");
  return r;
}

void check_restore_extents(const RestoreRecord& r, uint64_t region_size,
                           const std::vector<SealedRegion>& sealed) {
  std::vector<bool> used(sealed.size(), false);
  for (const RestoreExtent& x : r.extents) {
    if (x.source == 1) {
      const auto it = std::find_if(sealed.begin(), sealed.end(),
                                   [&](const SealedRegion& s) { return s.start == x.new_off; });
      if (it == sealed.end()) corrupt("a weight extent that does not start at a weight envelope");
      if (it->decrypt_size != x.len) corrupt("a weight extent whose length is not its envelope's plaintext length");
      const size_t i = size_t(it - sealed.begin());
      if (used[i]) corrupt("a weight envelope restored twice");
      used[i] = true;
      continue;
    }
    if (x.new_off > region_size || x.len > region_size - x.new_off)
      corrupt("a clear extent outside the binary region");
    if (x.len == 0) continue;
    for (const SealedRegion& s : sealed)
      if (x.new_off < s.start + s.size && s.start < x.new_off + x.len)
        corrupt("a clear extent overlaps a weight envelope");
  }
  // Every byte of the original is restored from somewhere, so every envelope is used.
  if (std::find(used.begin(), used.end(), false) != used.end())
    corrupt("a weight envelope is missing from the extents");
}

}  // namespace bmcrypt
