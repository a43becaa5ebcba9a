// Whole version 2 files in the native core (FORMAT.md §8.4, §6): the restore record's rules, and
// bmcrypt_verify_file's checks on version 2 files built from the fixtures for three recipients.
//
//   test_format2_files FIXTURE_DIR
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>

#include "bmodel_encoder.h"
#include "check.h"
#include "format2_util.h"
#include "restore.h"
#include "verify.h"

using namespace format2;

namespace {

void test_restore_record_rules() {
  // header, a 5-byte FlatBuffer (3 bytes of padding), two extents tiling a 30-byte body.
  auto record = [](uint64_t off2, uint64_t len2, uint32_t source2) {
    Bytes r(120 + 8 + 64, 0);
    store_le64(r.data() + 32, 64 + 5 + 30);
    store_le64(r.data() + 104, 5);
    store_le32(r.data() + 112, 2);
    uint8_t* e = r.data() + 128;
    store_le64(e, 0), store_le64(e + 8, 10), store_le64(e + 16, 0);
    store_le64(e + 32, off2), store_le64(e + 40, len2), store_le64(e + 48, 100), store_le32(e + 56, source2);
    return r;
  };
  auto code = [](const Bytes& r) { return code_of([&] { parse_restore_record(ByteView(r.data(), r.size())); }); };
  CHECK(code(record(10, 20, 1)) == Errc::ok);
  CHECK(code(record(11, 19, 1)) == Errc::corrupt);  // a gap
  CHECK(code(record(10, 21, 1)) == Errc::corrupt);  // past the body
  CHECK(code(record(10, 19, 1)) == Errc::corrupt);  // short of the body
  CHECK(code(record(10, 20, 2)) == Errc::corrupt);  // unknown source
  Bytes pad = record(10, 20, 1);
  pad[126] = 1;
  CHECK(code(pad) == Errc::corrupt);
  Bytes cut = record(10, 20, 1);
  cut.pop_back();
  CHECK(code(cut) == Errc::corrupt);
  const Bytes good = record(10, 20, 1);
  const RestoreRecord r = parse_restore_record(ByteView(good.data(), good.size()));
  std::vector<SealedRegion> sealed(1);
  sealed[0].start = 100, sealed[0].size = 20 + 104 + 16, sealed[0].decrypt_size = 20;
  CHECK(code_of([&] { check_restore_extents(r, 400, sealed); }) == Errc::ok);
  sealed[0].decrypt_size = 21;
  CHECK(code_of([&] { check_restore_extents(r, 400, sealed); }) == Errc::corrupt);
  sealed[0].decrypt_size = 20, sealed[0].start = 5;  // the clear extent [0, 10) overlaps it
  CHECK(code_of([&] { check_restore_extents(r, 400, sealed); }) == Errc::corrupt);
  sealed[0].start = 100;
  sealed.push_back(sealed[0]);
  sealed[1].start = 300;  // an envelope no extent restores
  CHECK(code_of([&] { check_restore_extents(r, 400, sealed); }) == Errc::corrupt);
  Bytes twice = record(10, 20, 1);  // the body's first 10 bytes from the envelope as well
  store_le32(twice.data() + 128 + 24, 1), store_le64(twice.data() + 128 + 16, 100);
  store_le64(twice.data() + 128 + 8, 20), store_le64(twice.data() + 128 + 32, 20);
  store_le64(twice.data() + 32, 64 + 5 + 40);
  sealed.pop_back();
  const RestoreRecord t = parse_restore_record(ByteView(twice.data(), twice.size()));
  CHECK(code_of([&] { check_restore_extents(t, 400, sealed); }) == Errc::corrupt);
  CHECK(code(record(10, 0, 1)) == Errc::corrupt);  // an empty extent
}

Errc verify_code(const Bytes& file, KeyRing& ring, std::string* message = nullptr) {
  return code_of([&] { verify_bmodel(ByteView(file.data(), file.size()), ring); }, message);
}

// The file with E2's plaintext changed by `change` and sealed again with the file's keys (a key
// holder's forgery: everything authenticates). The plaintext keeps its length.
Bytes resealed_e2(const Bytes& file, const FileKeys& keys, const std::function<void(Bytes&)>& change) {
  const uint32_t header_size = load_le32(file.data() + 4);
  const EnvelopeHeader e1 = parse_envelope(ByteView(file.data() + 8, header_size - 8));
  Bytes tail(56);
  open_envelope(e1, ByteView(file.data() + 8, header_size - 8), keys.dk, tail.data());
  const uint32_t fb_size = load_le32(tail.data());
  const ByteView e2(file.data() + header_size, fb_size);
  const EnvelopeHeader h = parse_envelope(e2);
  Bytes plain(size_t(h.plaintext_len));
  open_envelope(h, e2, keys.dk, plain.data());
  change(plain);
  const Bytes sealed = seal(keys, Kind::flatbuffer, plain, kDefaultSegLog2);
  Bytes out = file;
  if (sealed.size() != fb_size) throw std::runtime_error("E2 changed size");
  std::memcpy(out.data() + header_size, sealed.data(), sealed.size());
  return out;
}

// Where the restore record of E2's plaintext starts (manifest v2: restore_len at the end).
size_t record_at(const Bytes& plain) {
  return size_t(plain.size() - 64 - load_le64(plain.data() + plain.size() - 8));
}

void test_verify_v2(const std::string& fixture) {
  const Bytes plain = check::read_file(fixture);
  const FileKeys keys = new_file_keys_v2(three_recipients());
  const Bytes file = testing::encrypt_bmodel(plain, keys);
  for (int who = 0; who < 3; ++who) {
    KeyRing ring;
    if (who == 0) ring.add_key(kKeyA.data());
    if (who == 1) ring.add_passphrase("pass phrase");
    if (who == 2) ring.add_identity(kIdentity.data());
    std::string why;
    CHECK_MSG(verify_code(file, ring, &why) == Errc::ok, why);
    const uint32_t header_size = load_le32(file.data() + 4);
    Bytes bad = file;
    bad[file.size() - 30] ^= 1;
    CHECK(verify_code(bad, ring) == Errc::tampered);
    bad = file;
    bad[header_size + 200] ^= 1;
    CHECK(verify_code(bad, ring, &why) == Errc::tampered && why.find("FlatBuffer") == 0);
  }
  KeyRing wrong;
  wrong.add_key(kKeyB.data());
  CHECK(verify_code(file, wrong) == Errc::wrong_key);

  // Restore records forged by a key holder (§8.4): extents that break their rules are corrupt.
  // The original's hash, header or FlatBuffer are checked by decrypting (which rebuilds the
  // original), not by verifying: the Python reader's verdicts.
  KeyRing holder;
  holder.add_key(kKeyA.data());
  std::string why;
  CHECK_MSG(verify_code(resealed_e2(file, keys, [](Bytes&) {}), holder, &why) == Errc::ok, why);
  CHECK(verify_code(resealed_e2(file, keys, [](Bytes& p) { p[record_at(p)] ^= 1; }), holder) == Errc::ok);
  auto extent = [](Bytes& p, size_t i) {  // extent i of the record
    const size_t r = record_at(p);
    const uint64_t fb = load_le64(p.data() + r + 104);
    return p.data() + r + 120 + ((fb + 7) & ~uint64_t(7)) + 32 * i;
  };
  CHECK(verify_code(resealed_e2(file, keys, [&](Bytes& p) { extent(p, 0)[28] = 1; }), holder) == Errc::corrupt);
  CHECK(verify_code(resealed_e2(file, keys, [&](Bytes& p) { extent(p, 0)[24] = 7; }), holder) == Errc::corrupt);
  CHECK(verify_code(resealed_e2(file, keys, [&](Bytes& p) { extent(p, 1)[0] ^= 1; }), holder, &why) ==
            Errc::corrupt && why.find("restore record") != std::string::npos);
  CHECK(verify_code(resealed_e2(file, keys, [&](Bytes& p) {  // a weight extent moved off its envelope
          uint8_t* e = extent(p, 0)[24] == 1 ? extent(p, 0) : extent(p, 1);
          store_le64(e + 16, load_le64(e + 16) + 1);
        }), holder) == Errc::corrupt);
  CHECK(verify_code(resealed_e2(file, keys, [&](Bytes& p) {  // restore_len one byte short
          store_le64(p.data() + p.size() - 8, load_le64(p.data() + p.size() - 8) - 1);
        }), holder) == Errc::corrupt);
  // The weight envelopes of another file of the same model: refused (dk_check and file_id).
  KeyRing ring;
  ring.add_key(kKeyA.data());
  const Bytes other = testing::encrypt_bmodel(plain, new_file_keys_v2({key_file_recipient(kKeyA.data())}));
  const uint32_t h1 = load_le32(file.data() + 4), h2 = load_le32(other.data() + 4);
  const size_t tail = std::min(file.size() - h1, other.size() - h2) / 4;
  Bytes mixed = file;
  std::memcpy(mixed.data() + mixed.size() - tail, other.data() + other.size() - tail, tail);
  CHECK(verify_code(mixed, ring) == Errc::tampered);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
    return 2;
  }
  test_restore_record_rules();
  for (const char* name : {"mlp_bm1684x_f16_nokernel.bmodel", "qwen2_tiny_bf16_seq64_nokernel.bmodel"})
    test_verify_v2(std::string(argv[1]) + "/" + name);
  return check::summary("test_format2_files");
}
