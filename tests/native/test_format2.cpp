// Format version 2 in the native core (FORMAT.md §8): X25519 and identity files, the key area and
// its stanzas of every type, the per-file data keys of the callback, the licence seam, manifest 2
// with its restore record, and whole-file verification of version 2 files built from fixtures.
//
//   test_format2 FIXTURE_DIR
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include <cryptopp/sha.h>

#include "bmodel_encoder.h"
#include "check.h"
#include "contract.h"
#include "envelope.h"
#include "error.h"
#include "keyfile.h"
#include "keyring.h"
#include "layout.h"
#include "recipients.h"
#include "restore.h"
#include "verify.h"

using namespace bmcrypt;

namespace {

using Bytes = std::vector<uint8_t>;

Bytes pattern(size_t n, uint32_t seed) {
  Bytes v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t((i * 2654435761u + seed * 0x9e3779b9u) >> 13);
  return v;
}

Errc code_of(const std::function<void()>& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return Errc::ok;
}

Bytes seal(const FileKeys& keys, Kind kind, const Bytes& pt, unsigned seg_log2 = 12) {
  Bytes env(sealed_size(keys, kind, pt.size(), seg_log2));
  seal_envelope(keys, kind, ByteView(pt.data(), pt.size()), env.data(), seg_log2);
  return env;
}

EnvelopeHeader parsed(const Bytes& env) { return parse_envelope(ByteView(env.data(), env.size())); }

// The plaintext of an envelope through the ring, or the error code.
Errc open_code(KeyRing& ring, const Bytes& env, Bytes* out = nullptr, std::string* message = nullptr) {
  return code_of([&] {
    const EnvelopeHeader h = parsed(env);
    const SecretBytes dk = ring.data_key(h);
    Bytes plain(size_t(h.plaintext_len));
    open_envelope(h, ByteView(env.data(), env.size()), dk, plain.data());
    if (out) *out = plain;
  }, message);
}

const Bytes kKeyA = pattern(32, 1), kKeyB = pattern(32, 2), kIdentity = pattern(32, 3);
const Bytes kTail = [] {
  Bytes t(kHeaderTailSize, 0);
  store_le32(t.data(), 1234);
  return t;
}();

std::vector<Recipient> three_recipients() {
  return {key_file_recipient(kKeyA.data()), passphrase_recipient(new_passphrase_key("pass phrase")),
          x25519_recipient(x25519_public(kIdentity.data()))};
}

// RFC 7748 §5.2 and §6.1: Crypto++'s x25519 is the standard function (with clamping).
void test_x25519() {
  const Bytes scalar = check::from_hex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
  const Bytes u = check::from_hex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
  X25519Key point;
  std::memcpy(point.data(), u.data(), 32);
  uint8_t shared[32];
  CHECK(x25519_shared(scalar.data(), point, shared));
  CHECK(Bytes(shared, shared + 32) ==
        check::from_hex("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"));
  const Bytes alice = check::from_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  const X25519Key pub = x25519_public(alice.data());
  CHECK(Bytes(pub.begin(), pub.end()) ==
        check::from_hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"));
  X25519Key zero{};
  CHECK(!x25519_shared(alice.data(), zero, shared));  // a small-order point: S is all zero
}

Bytes identity_bytes(const Bytes& secret) {
  Bytes f(72, 0);
  std::memcpy(f.data(), "BMCRYPT-X25519-1", 16);
  std::memcpy(f.data() + 16, secret.data(), 32);
  uint8_t digest[32];
  CryptoPP::SHA256().CalculateDigest(digest, f.data(), 48);
  std::memcpy(f.data() + 48, digest, 24);
  return f;
}

void test_identity_files() {
  const Bytes good = identity_bytes(kIdentity);
  CHECK(is_identity_file(good.data(), good.size()));
  const SecretBytes secret = parse_identity("i", good.data(), good.size());
  CHECK(Bytes(secret.begin(), secret.end()) == kIdentity);
  Bytes bad = good;
  bad[20] ^= 1;
  CHECK(code_of([&] { parse_identity("i", bad.data(), bad.size()); }) == Errc::key_file);

  const std::string path = "/tmp/bmcrypt-f2-" + std::to_string(getpid()) + ".identity";
  check::write_file(path, good);
  chmod(path.c_str(), 0600);
  const KeyMaterial m = read_key_material(path);
  CHECK(m.type == KeyMaterial::Type::identity && Bytes(m.secret.begin(), m.secret.end()) == kIdentity);
  KeyRing ring;
  CHECK(code_of([&] { ring.add_key_file(path); }) == Errc::ok && !ring.empty());
  CHECK(code_of([&] { ring.writer_key(); }) == Errc::no_key);  // an identity only decrypts
  chmod(path.c_str(), 0644);
  CHECK(code_of([&] { read_key_material(path); }) == Errc::key_file);
  check::write_file(path, bad);
  chmod(path.c_str(), 0600);
  std::string why;
  CHECK(code_of([&] { read_key_material(path); }, &why) == Errc::key_file &&
        why.find("checksum") != std::string::npos);
  Bytes longer = good;
  longer.push_back('\n');  // not 72 bytes: read as a (malformed) key file
  check::write_file(path, longer);
  CHECK(code_of([&] { read_key_material(path); }) == Errc::key_file);
  check::write_file(path, Bytes());
  const std::string text = "bmcrypt-key-v1\nkey: " + std::string(64, 'a') + "\n";
  check::write_file(path, Bytes(text.begin(), text.end()));
  CHECK(read_key_material(path).type == KeyMaterial::Type::key);
  unlink(path.c_str());
}

// Each recipient type opens E1, then E2/E3 with the DK kept for the file.
void test_recipients() {
  const FileKeys keys = new_file_keys_v2(three_recipients(), 4);
  const Bytes e1 = seal(keys, Kind::header_tail, kTail), weights = pattern(3 * 4096 + 5, 7);
  const Bytes e3 = seal(keys, Kind::weights, weights);
  CHECK(parsed(e1).version == 2 && parsed(e1).key_area.size() == 16 + 4 * 128 && parsed(e3).key_area.empty());
  CHECK(e3.size() == 104 + weights.size() + 4 * 16);

  for (int who = 0; who < 3; ++who) {
    KeyRing ring;
    if (who == 0) ring.add_key(kKeyA.data());
    if (who == 1) ring.add_passphrase("pass phrase");
    if (who == 2) ring.add_identity(kIdentity.data());
    Bytes out;
    CHECK_MSG(open_code(ring, e3) == Errc::wrong_key, "E3 before its E1");
    CHECK_MSG(open_code(ring, e1, &out) == Errc::ok && out == kTail, std::to_string(who));
    CHECK_MSG(open_code(ring, e3, &out) == Errc::ok && out == weights, std::to_string(who));
  }
  KeyRing wrong;
  wrong.add_key(kKeyB.data());
  wrong.add_passphrase("another");
  std::string why;
  CHECK(open_code(wrong, e1, nullptr, &why) == Errc::wrong_key);
  const KeyId a = key_id(kKeyA.data());
  CHECK_MSG(why.find("key id") != std::string::npos && why.find("passphrase") != std::string::npos, why);
  (void)a;
  KeyRing none;
  CHECK(open_code(none, e1) == Errc::no_key);

  // Another file with the same file_id (a forgery): its dk_check differs.
  KeyRing ring;
  ring.add_key(kKeyA.data());
  CHECK(open_code(ring, e1) == Errc::ok);
  FileKeys forged = new_file_keys_v2({key_file_recipient(kKeyA.data())}, 1);
  forged.file_id = keys.file_id;
  CHECK(open_code(ring, seal(forged, Kind::weights, weights), nullptr, &why) == Errc::tampered &&
        why.find("another file") != std::string::npos);
  // After this thread opened an E1, an envelope of a file never opened is of another file.
  const FileKeys stranger = new_file_keys_v2({key_file_recipient(kKeyA.data())}, 1);
  CHECK(open_code(ring, seal(stranger, Kind::weights, weights), nullptr, &why) == Errc::tampered &&
        why.find("another file") != std::string::npos);
  ring.clear();
  ring.add_key(kKeyA.data());
  CHECK(open_code(ring, e3) == Errc::wrong_key);  // clear() forgot the file
  CHECK(open_code(ring, seal(stranger, Kind::weights, weights)) == Errc::wrong_key);
}

// Byte b of stanza i of E1's key area (the area starts at 104, its stanzas at +16).
size_t stanza_byte(size_t i, size_t b) { return 104 + 16 + 128 * i + b; }

void test_key_area_rules() {
  const FileKeys keys = new_file_keys_v2({key_file_recipient(kKeyA.data()), key_file_recipient(kKeyB.data())}, 3);
  const Bytes e1 = seal(keys, Kind::header_tail, kTail);
  KeyRing ring;
  ring.add_key(kKeyB.data());
  CHECK(open_code(ring, e1) == Errc::ok);
  auto with = [&](size_t at, uint8_t value) {
    Bytes e = e1;
    e[at] = value;
    return e;
  };
  KeyRing fresh;
  fresh.add_key(kKeyB.data());
  CHECK(open_code(fresh, with(stanza_byte(1, 44), e1[stanza_byte(1, 44)] ^ 1)) == Errc::tampered);   // key check
  CHECK(open_code(fresh, with(stanza_byte(1, 80), e1[stanza_byte(1, 80)] ^ 1)) == Errc::tampered);   // wrapped DK
  CHECK(open_code(fresh, with(stanza_byte(1, 60), e1[stanza_byte(1, 60)] ^ 1)) == Errc::tampered);   // nonce
  CHECK(open_code(fresh, with(stanza_byte(1, 36), e1[stanza_byte(1, 36)] ^ 1)) == Errc::tampered);  // key id
  KeyRing both;  // a damaged stanza of one key does not stop another key's stanza from opening
  both.add_key(kKeyA.data());
  both.add_key(kKeyB.data());
  CHECK(open_code(both, with(stanza_byte(0, 80), e1[stanza_byte(0, 80)] ^ 1)) == Errc::ok);
  CHECK(open_code(both, with(stanza_byte(1, 80), e1[stanza_byte(1, 80)] ^ 1)) == Errc::ok);
  CHECK(open_code(fresh, with(stanza_byte(0, 80), e1[stanza_byte(0, 80)] ^ 1)) == Errc::ok);  // not ours
  CHECK(open_code(fresh, with(stanza_byte(1, 0), 9)) == Errc::unsupported_version);
  CHECK(open_code(fresh, with(stanza_byte(1, 1), 1)) == Errc::corrupt);    // scrypt field of a key file
  CHECK(open_code(fresh, with(stanza_byte(1, 125), 1)) == Errc::corrupt);  // reserved
  CHECK(open_code(fresh, with(stanza_byte(2, 5), 1)) == Errc::corrupt);    // an unused slot
  CHECK(open_code(fresh, with(104, 'X')) == Errc::corrupt);                // magic
  CHECK(open_code(fresh, with(104 + 6, 4)) == Errc::corrupt);              // count > slots
  CHECK(open_code(fresh, with(104 + 6, 0)) == Errc::corrupt);              // count 0
  CHECK(open_code(fresh, with(104 + 4, 2)) == Errc::corrupt);              // slots != length
  CHECK(open_code(fresh, with(104 + 9, 1)) == Errc::corrupt);              // reserved
  Bytes dup = e1;  // two stanzas with one key id
  std::memcpy(dup.data() + stanza_byte(0, 0), dup.data() + stanza_byte(1, 0), 128);
  CHECK(open_code(fresh, dup) == Errc::corrupt);
  Bytes swapped = e1;  // stanza 1 wraps another DK for the same key: dk_check refuses it
  const FileKeys other = new_file_keys_v2({key_file_recipient(kKeyB.data())}, 1);
  std::memcpy(swapped.data() + stanza_byte(1, 0), other.key_area.data() + 16, 128);
  CHECK(open_code(fresh, swapped) == Errc::tampered);

  // An X25519 stanza with a small-order ephemeral key: an all-zero secret.
  const FileKeys xk = new_file_keys_v2({x25519_recipient(x25519_public(kIdentity.data()))}, 1);
  Bytes x1 = seal(xk, Kind::header_tail, kTail);
  std::memset(x1.data() + stanza_byte(0, 4), 0, 32);
  KeyRing device;
  device.add_identity(kIdentity.data());
  CHECK(open_code(device, x1) == Errc::tampered);
  x1 = seal(xk, Kind::header_tail, kTail);
  x1[stanza_byte(0, 10)] ^= 1;  // another ephemeral key: another K, its check fails
  CHECK(open_code(device, x1) == Errc::tampered);
}

void test_envelope_header_rules() {
  const FileKeys keys = new_file_keys_v2({key_file_recipient(kKeyA.data())}, 1);
  const Bytes e1 = seal(keys, Kind::header_tail, kTail), e3 = seal(keys, Kind::weights, pattern(100, 1));
  auto code = [](Bytes e) { return code_of([&] { parsed(e); }); };
  auto with32 = [](Bytes e, size_t at, uint32_t v) {
    store_le32(e.data() + at, v);
    return e;
  };
  CHECK(code(e1) == Errc::ok && code(e3) == Errc::ok);
  Bytes kind0 = e3;
  kind0[6] = 0;
  CHECK(code(kind0) == Errc::corrupt);
  CHECK(code(with32(e1, 64, 16 + 128 + 1)) == Errc::corrupt);
  CHECK(code(with32(e1, 64, 16)) == Errc::corrupt);
  CHECK(code(with32(e1, 64, 16 + 128 * 256)) == Errc::corrupt);
  CHECK(code(with32(e3, 64, 144)) == Errc::corrupt);
  CHECK(code(with32(e1, 68, 2)) == Errc::unsupported_version);
  CHECK(code(with32(e1, 68, 1)) == Errc::corrupt);  // licence required, no licence key
  CHECK(code(with32(e3, 68, 1)) == Errc::corrupt);
  Bytes key_without_policy = e1;
  key_without_policy[80] = 1;
  CHECK(code(key_without_policy) == Errc::corrupt);
  Bytes e3_key = e3;
  e3_key[80] = 1;
  CHECK(code(e3_key) == Errc::corrupt);
  CHECK(code(Bytes(e1.begin(), e1.begin() + 100)) == Errc::truncated);
  CHECK(code(Bytes(e1.begin(), e1.begin() + 200)) == Errc::truncated);
  CHECK(code(Bytes(e1.begin(), e1.end() - 1)) == Errc::truncated);
  Bytes longer = e1;
  longer.push_back(0);
  CHECK(code(longer) == Errc::corrupt);
  Bytes v3 = e1;
  v3[4] = 3;
  CHECK(code(v3) == Errc::unsupported_version);

  // Every public header byte is authenticated: a changed dk_check or region salt fails.
  KeyRing ring;
  ring.add_key(kKeyA.data());
  CHECK(open_code(ring, e1) == Errc::ok);
  Bytes salt = e3;
  salt[40] ^= 1;
  CHECK(open_code(ring, salt) == Errc::tampered);
  Bytes check = e1;
  check[50] ^= 1;
  CHECK(open_code(ring, check) == Errc::tampered);  // E1's own dk_check: the unwrapped DK differs
}

void test_licence_seam() {
  const Bytes signer = pattern(32, 9);
  const FileKeys keys = new_file_keys_v2({key_file_recipient(kKeyA.data())}, 1, kPolicyLicence, signer.data());
  const Bytes e1 = seal(keys, Kind::header_tail, kTail), e3 = seal(keys, Kind::weights, pattern(10, 1));
  CHECK(parsed(e1).licence_required());
  KeyRing ring;
  ring.add_key(kKeyA.data());
  std::string why;
  CHECK(open_code(ring, e1, nullptr, &why) == Errc::unsupported_version &&
        why.find("licence required") != std::string::npos);
  CHECK(open_code(ring, e3) == Errc::wrong_key);  // the DK was not kept
  int calls = 0;
  KeyRing::set_licence_check([&](const EnvelopeHeader& h, const KeyRing&) {
    ++calls;
    if (h.licence_key[0] != signer[0]) throw Error(Errc::tampered, "not the signer");
  });
  CHECK(open_code(ring, e1) == Errc::ok && open_code(ring, e3) == Errc::ok && calls == 1);
  KeyRing::set_licence_check([](const EnvelopeHeader&, const KeyRing&) {
    throw Error(Errc::corrupt, "refused by the check");
  });
  KeyRing other;
  other.add_key(kKeyA.data());
  CHECK(open_code(other, e1) == Errc::corrupt && open_code(other, e3) == Errc::wrong_key);
  KeyRing::set_licence_check(nullptr);
}

// The callback sees regions one at a time, from any thread; it keeps 64 files.
void test_callback() {
  KeyRing& ring = global_keyring();
  ring.clear();
  ring.add_identity(kIdentity.data());
  auto call = [](const Bytes& env, uint64_t* n) { return callback_decrypt(env.data(), env.size(), n); };
  const FileKeys keys = new_file_keys_v2(three_recipients());
  Bytes fb = pattern(1000, 4), record = pattern(120, 5);
  Manifest m;
  m.version = 2;
  m.flatbuffer_len = fb.size();
  m.restore_len = record.size();
  Bytes e2_plain = fb;
  e2_plain.insert(e2_plain.end(), record.begin(), record.end());
  e2_plain.resize(e2_plain.size() + 64);
  write_manifest(m, e2_plain.data() + 1120);
  const Bytes e1 = seal(keys, Kind::header_tail, kTail), e2 = seal(keys, Kind::flatbuffer, e2_plain);
  uint64_t n = 0;
  uint8_t* out = call(e2, &n);
  CHECK(!out && last_error_code() == Errc::wrong_key &&
        std::string(last_error_text()).find("open the header first") != std::string::npos);
  out = call(e1, &n);
  CHECK(out && n == 56);
  std::free(out);
  out = call(e2, &n);
  CHECK(out && n == 1000 && std::memcmp(out, fb.data(), 1000) == 0);
  std::free(out);
  Bytes v1_manifest = e2_plain;  // a version 1 manifest with a restore record: corrupt
  store_le32(v1_manifest.data() + 1124, 1);
  CHECK(!call(seal(keys, Kind::flatbuffer, v1_manifest), &n) && last_error_code() == Errc::corrupt);
  Bytes too_long = e2_plain;  // restore_len past the FlatBuffer
  store_le64(too_long.data() + 1120 + 56, 2000);
  CHECK(!call(seal(keys, Kind::flatbuffer, too_long), &n) && last_error_code() == Errc::corrupt);

  // 65 more files from 4 threads: the first file's DK is dropped (LRU), the last ones kept.
  std::vector<FileKeys> many;
  for (int i = 0; i < 65; ++i) many.push_back(new_file_keys_v2({x25519_recipient(x25519_public(kIdentity.data()))}, 1));
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (size_t i = t; i < many.size(); i += 4) {
        uint64_t len = 0;
        const Bytes h = seal(many[i], Kind::header_tail, kTail), w = seal(many[i], Kind::weights, pattern(9000, i));
        for (const Bytes* env : {&h, &w}) {
          uint8_t* p = callback_decrypt(env->data(), env->size(), &len);
          if (!p) ++failed;
          std::free(p);
        }
      }
    });
  for (std::thread& t : threads) t.join();
  CHECK(failed == 0);
  CHECK(!call(e2, &n) && last_error_code() == Errc::wrong_key);  // evicted
  out = call(seal(many.back(), Kind::weights, pattern(5, 1)), &n);
  CHECK(out && n == 5);
  std::free(out);
  ring.clear();
}

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
  test_x25519();
  test_identity_files();
  test_recipients();
  test_key_area_rules();
  test_envelope_header_rules();
  test_licence_seam();
  test_callback();
  test_restore_record_rules();
  for (const char* name : {"mlp_bm1684x_f16_nokernel.bmodel", "qwen2_tiny_bf16_seq64_nokernel.bmodel"})
    test_verify_v2(std::string(argv[1]) + "/" + name);
  return check::summary("test_format2");
}
