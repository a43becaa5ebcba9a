// The native core below the C API: segment boundaries and the parallel engine, the key ring,
// key files, the callback contract per kind, and whole-file verification of bmodels built from
// the plain fixtures.
//
//   test_core FIXTURE_DIR
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>

#include "bmodel_encoder.h"
#include "check.h"
#include "contract.h"
#include "envelope.h"
#include "error.h"
#include "keyfile.h"
#include "keyring.h"
#include "layout.h"
#include "parallel.h"
#include "verify.h"

using namespace bmcrypt;

namespace {

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t((i * 2654435761u + seed * 0x9e3779b9u) >> 13);
  return v;
}

std::vector<uint8_t> seal(const FileKeys& keys, Kind kind, const std::vector<uint8_t>& pt, unsigned seg_log2 = 12) {
  std::vector<uint8_t> env(envelope_size(pt.size(), seg_log2));
  seal_envelope(keys, kind, ByteView(pt.data(), pt.size()), env.data(), seg_log2);
  return env;
}

// The error code f() throws, or ok.
Errc code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return Errc::ok;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

UserKey key_a() { return raw_user_key(pattern(32, 1).data()); }
UserKey key_b() { return raw_user_key(pattern(32, 2).data()); }

void test_segment_boundaries() {
  const FileKeys keys = new_file_keys(key_a());
  KeyRing ring;
  ring.add_key(key_a().k.data());
  const size_t s = 4096;
  for (unsigned threads : {1u, 0u}) {
    set_max_threads(threads);
    for (size_t n : {size_t(0), size_t(1), s - 1, s, s + 1, 2 * s, 3 * s + 7, 64 * s + 5}) {
      const auto pt = pattern(n, uint32_t(n));
      const auto env = seal(keys, Kind::weights, pt);
      CHECK(env.size() == 152 + n + 16 * std::max<size_t>(1, (n + s - 1) / s));
      const EnvelopeHeader h = parse_envelope(ByteView(env.data(), env.size()));
      std::vector<uint8_t> out(n + 1, 0xee);
      open_envelope(h, ByteView(env.data(), env.size()), ring.data_key(h, ByteView(env.data(), env.size())), out.data());
      CHECK_MSG(std::equal(pt.begin(), pt.end(), out.begin()) && out[n] == 0xee, "size " + std::to_string(n));
      std::vector<uint8_t> streamed;
      stream_envelope(h, ByteView(env.data(), env.size()), ring.data_key(h, ByteView(env.data(), env.size())),
                      [&](const uint8_t* p, size_t k) { streamed.insert(streamed.end(), p, p + k); });
      CHECK_MSG(streamed == pt, "streamed size " + std::to_string(n));
    }
  }
  set_max_threads(0);
}

void test_parallel_failure_wipes_everything() {
  const FileKeys keys = new_file_keys(key_a());
  KeyRing ring;
  ring.add_key(key_a().k.data());
  const auto pt = pattern(40 * 4096, 7);
  for (size_t segment : {size_t(0), size_t(23), size_t(39)}) {
    auto env = seal(keys, Kind::weights, pt);
    env[152 + segment * (4096 + 16) + 100] ^= 0x40;
    const EnvelopeHeader h = parse_envelope(ByteView(env.data(), env.size()));
    std::vector<uint8_t> out(pt.size(), 0xee);
    CHECK(code_of([&] { open_envelope(h, ByteView(env.data(), env.size()), ring.data_key(h, ByteView(env.data(), env.size())), out.data()); }) ==
          Errc::tampered);
    CHECK_MSG(all_zero(out.data(), out.size()), "output not wiped after segment " + std::to_string(segment));
  }
  // Items stop early once one fails, and a worker's exception reaches the caller.
  CHECK(!for_each_item(100, [] { return [](uint64_t i) { return i != 50; }; }));
  CHECK(code_of([] { for_each_item(100, [] { return [](uint64_t i) -> bool { if (i == 70) throw Error(Errc::internal, "x"); return true; }; }); }) == Errc::internal);
}

void test_keyring() {
  const FileKeys file_b = new_file_keys(key_b());
  const auto env = seal(file_b, Kind::weights, pattern(100, 3));
  const EnvelopeHeader h = parse_envelope(ByteView(env.data(), env.size()));

  KeyRing ring;
  CHECK(code_of([&] { ring.data_key(h, ByteView(env.data(), env.size())); }) == Errc::no_key);
  ring.add_key(key_a().k.data());
  CHECK(code_of([&] { ring.data_key(h, ByteView(env.data(), env.size())); }) == Errc::wrong_key);
  CHECK(message_of([&] { ring.data_key(h, ByteView(env.data(), env.size())); }).find("key id") != std::string::npos);
  ring.add_passphrase("not this one");
  CHECK(code_of([&] { ring.data_key(h, ByteView(env.data(), env.size())); }) == Errc::wrong_key);
  ring.add_key(key_b().k.data());
  CHECK(code_of([&] { ring.data_key(h, ByteView(env.data(), env.size())); }) == Errc::ok);
  CHECK(std::memcmp(ring.data_key(h, ByteView(env.data(), env.size())).data(), file_b.dk.data(), 32) == 0);
  ring.clear();
  CHECK(ring.empty());
  CHECK(code_of([&] { ring.data_key(h, ByteView(env.data(), env.size())); }) == Errc::no_key);

  // Passphrases: the writer's key gets a fresh salt each time; the reader derives it per salt.
  KeyRing pass;
  pass.add_passphrase("correct horse");
  const UserKey w1 = pass.writer_key(), w2 = pass.writer_key();
  CHECK(w1.source == KeySource::passphrase && w1.salt != w2.salt);
  CHECK(w1.scrypt.log2n == 15 && w1.scrypt.r == 8 && w1.scrypt.p == 1);
  const FileKeys file_p = new_file_keys(w1);
  const auto penv = seal(file_p, Kind::generic, pattern(10, 4));
  const EnvelopeHeader ph = parse_envelope(ByteView(penv.data(), penv.size()));
  CHECK(std::memcmp(pass.data_key(ph, ByteView(penv.data(), penv.size())).data(), file_p.dk.data(), 32) == 0);
  KeyRing wrong;
  wrong.add_passphrase("correct horse.");
  wrong.add_key(key_a().k.data());
  CHECK(code_of([&] { wrong.data_key(ph, ByteView(penv.data(), penv.size())); }) == Errc::wrong_key);
}

void test_key_files() {
  const std::string good = "bmcrypt-key-v1\n# key id 0011, created now\nkey: " + std::string(64, 'a') + "\n";
  auto parse = [](const std::string& t) { return code_of([&] { parse_key_text("k", t.data(), t.size()); }); };
  CHECK(parse(good) == Errc::ok);
  CHECK(parse(good.substr(0, good.size() - 1)) == Errc::ok);  // no final newline
  CHECK(parse_key_text("k", good.data(), good.size())[0] == 0xaa);
  CHECK(parse("bmcrypt-key-v1\nkey: " + std::string(64, '0')) == Errc::ok);
  CHECK(parse("bmcrypt-key-v1\r\nkey: " + std::string(64, '0')) == Errc::key_file);
  CHECK(parse("bmcrypt-key-v2\nkey: " + std::string(64, '0')) == Errc::key_file);
  CHECK(message_of([] { parse_key_text("k", "bmcrypt-key-v2\n", 15); }).find("format bmcrypt-key-v2") != std::string::npos);
  CHECK(parse("key: " + std::string(64, '0')) == Errc::key_file);
  CHECK(parse("bmcrypt-key-v1\nkey: " + std::string(64, 'A')) == Errc::key_file);
  CHECK(parse("bmcrypt-key-v1\nkey: " + std::string(63, '0')) == Errc::key_file);
  CHECK(parse("bmcrypt-key-v1\n\nkey: " + std::string(64, '0')) == Errc::key_file);
  CHECK(parse("bmcrypt-key-v1\nkey: " + std::string(64, '0') + "\nkey: " + std::string(64, '0')) == Errc::key_file);
  CHECK(parse("bmcrypt-key-v1\nkey: " + std::string(62, '0') + "\xc3\xa4") == Errc::key_file);
  CHECK(parse("") == Errc::key_file);

  char dir[] = "/tmp/bmcrypt-keyfile-XXXXXX";
  CHECK(mkdtemp(dir) != nullptr);
  const std::string path = std::string(dir) + "/k";
  check::write_file(path, std::vector<uint8_t>(good.begin(), good.end()));
  chmod(path.c_str(), 0600);
  CHECK(code_of([&] { read_key_file(path); }) == Errc::ok);
  chmod(path.c_str(), 0640);
  CHECK(code_of([&] { read_key_file(path); }) == Errc::key_file);
  chmod(path.c_str(), 0604);
  CHECK(code_of([&] { read_key_file(path); }) == Errc::key_file);
  CHECK(code_of([&] { read_key_file(path + ".missing"); }) == Errc::key_file);
  CHECK(code_of([&] { read_key_file(dir); }) == Errc::key_file);
  unlink(path.c_str());
  rmdir(dir);
}

// The vendor contract per kind: exactly 56 bytes for the header tail, the FlatBuffer without
// its manifest, everything else whole.
void test_callback_kinds() {
  global_keyring().clear();
  global_keyring().add_key(key_a().k.data());
  const FileKeys keys = new_file_keys(key_a());
  auto call = [](const std::vector<uint8_t>& env, uint64_t* n) { return callback_decrypt(env.data(), env.size(), n); };
  uint64_t n = 0;

  std::vector<uint8_t> tail(56, 0);
  tail[0] = 0x12;
  uint8_t* out = call(seal(keys, Kind::header_tail, tail), &n);
  CHECK(out && n == 56 && out[0] == 0x12);
  std::free(out);
  tail[40] = 1;  // a reserved byte
  CHECK(!call(seal(keys, Kind::header_tail, tail), &n) && last_error_code() == Errc::corrupt && n == 0);
  CHECK(!call(seal(keys, Kind::header_tail, std::vector<uint8_t>(57)), &n) && last_error_code() == Errc::corrupt);

  std::vector<uint8_t> fb = pattern(1000, 9);
  Manifest m;
  m.flatbuffer_len = fb.size();
  fb.resize(fb.size() + 64);
  write_manifest(m, fb.data() + 1000);
  out = call(seal(keys, Kind::flatbuffer, fb), &n);
  CHECK(out && n == 1000 && std::memcmp(out, fb.data(), 1000) == 0);
  std::free(out);
  fb[1000] = 'X';  // manifest magic
  CHECK(!call(seal(keys, Kind::flatbuffer, fb), &n) && last_error_code() == Errc::corrupt);
  fb[1000] = 'B';
  fb[1004] = 3;  // manifest version
  CHECK(!call(seal(keys, Kind::flatbuffer, fb), &n) && last_error_code() == Errc::unsupported_version);
  CHECK(!call(seal(keys, Kind::flatbuffer, std::vector<uint8_t>(63)), &n) && last_error_code() == Errc::corrupt);

  for (Kind k : {Kind::weights, Kind::generic}) {
    const auto pt = pattern(5 * 4096 + 1, 5);
    out = call(seal(keys, k, pt), &n);
    CHECK(out && n == pt.size() && std::memcmp(out, pt.data(), n) == 0);
    std::free(out);
  }
  global_keyring().clear();
}

std::vector<uint8_t> flipped(std::vector<uint8_t> v, size_t at) {
  v.at(at) ^= 0x01;
  return v;
}

Errc verify_code(const std::vector<uint8_t>& file, KeyRing& ring, std::string* message = nullptr) {
  try {
    verify_bmodel(ByteView(file.data(), file.size()), ring);
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return Errc::ok;
}

void test_verify(const std::string& fixture) {
  const std::vector<uint8_t> plain = check::read_file(fixture);
  KeyRing ring;
  ring.add_key(key_a().k.data());
  CHECK(verify_code(plain, ring) == Errc::not_encrypted);
  CHECK(verify_code({}, ring) == Errc::not_a_bmodel);
  CHECK(verify_code({1, 2, 3, 4, 5}, ring) == Errc::not_a_bmodel);
  CHECK(verify_code({0xee, 0xaa, 0x55, 0xff, 64, 0, 0}, ring) == Errc::not_a_bmodel);
  CHECK(verify_code({0xee, 0xaa, 0x55, 0xff, 64, 0, 0, 0, 1, 2}, ring) == Errc::not_encrypted);
  CHECK(verify_code({0xee, 0xaa, 0x55, 0xff, 64, 0, 0, 0, 'B', 'M', 'C', 'E'}, ring) == Errc::corrupt);

  const FileKeys keys = new_file_keys(key_a());
  const std::vector<uint8_t> file = testing::encrypt_bmodel(plain, keys);
  const VerifyReport r = verify_bmodel(ByteView(file.data(), file.size()), ring);
  CHECK(r.typed && r.clear_covered && r.weight_envelopes > 0 && r.nets > 0 && r.weight_bytes > 0);
  CHECK(r.key_id == keys.key_block.key_id());

  // Where things are, to damage them on purpose.
  const uint32_t header_size = load_le32(file.data() + 4);
  const EnvelopeHeader e1 = parse_envelope(ByteView(file.data() + 8, header_size - 8));
  std::vector<uint8_t> tail(56);
  open_envelope(e1, ByteView(file.data() + 8, header_size - 8), ring.data_key(e1, ByteView(file.data() + 8, header_size - 8)), tail.data());
  const uint32_t fb_size = load_le32(tail.data());
  const uint64_t bin_off = header_size + fb_size;

  std::string msg;
  CHECK(verify_code(flipped(file, 8 + 200), ring, &msg) == Errc::tampered && msg.find("header") == 0);
  CHECK(verify_code(flipped(file, header_size + 300), ring, &msg) == Errc::tampered && msg.find("FlatBuffer") == 0);
  CHECK(verify_code(flipped(file, bin_off + 10), ring, &msg) == Errc::tampered && msg.find("clear regions") == 0);
  CHECK(verify_code(flipped(file, file.size() - 20), ring, &msg) == Errc::tampered &&
        msg.find("weights of net '") == 0);
  std::vector<uint8_t> shorter(file.begin(), file.end() - 1), longer = file;
  longer.push_back(0);
  CHECK(verify_code(shorter, ring) == Errc::truncated);
  CHECK(verify_code(longer, ring) == Errc::corrupt);
  std::vector<uint8_t> bad_header_size = file;
  store_le32(bad_header_size.data() + 4, header_size + 1);
  CHECK(verify_code(bad_header_size, ring) != Errc::ok);
  std::vector<uint8_t> foreign = file;
  foreign[8] = 'X';
  CHECK(verify_code(foreign, ring) == Errc::foreign_encrypted);

  KeyRing other;
  other.add_key(key_b().k.data());
  CHECK(verify_code(file, other) == Errc::wrong_key);
  KeyRing none;
  CHECK(verify_code(file, none) == Errc::no_key);

  // The weight envelopes of another file of the same model and key, swapped in: refused. The
  // encoder appends them after the original binary region, at the same offsets in both files.
  const std::vector<uint8_t> other_file = testing::encrypt_bmodel(plain, new_file_keys(key_a()));
  const size_t envelopes = size_t(file.size() - bin_off - load_le64(plain.data() + 12));
  std::vector<uint8_t> mixed = file;
  std::memcpy(mixed.data() + mixed.size() - envelopes, other_file.data() + other_file.size() - envelopes, envelopes);
  CHECK(verify_code(mixed, ring, &msg) == Errc::tampered && msg.find("another file") != std::string::npos);

  // model_tool's layout: kind 0, no manifest; verified except for the clear bytes.
  const std::vector<uint8_t> untyped = testing::encrypt_bmodel(plain, keys, false);
  const VerifyReport u = verify_bmodel(ByteView(untyped.data(), untyped.size()), ring);
  CHECK(!u.typed && !u.clear_covered && u.weight_envelopes == r.weight_envelopes);
  CHECK(verify_code(flipped(untyped, untyped.size() - 20), ring) == Errc::tampered);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
    return 2;
  }
  test_segment_boundaries();
  test_parallel_failure_wipes_everything();
  test_keyring();
  test_key_files();
  test_callback_kinds();
  for (const char* name : {"mlp_bm1684x_f16_nokernel.bmodel", "qwen2_tiny_bf16_seq64_nokernel.bmodel"})
    test_verify(std::string(argv[1]) + "/" + name);
  return check::summary("test_core");
}
