// libbmcrypt.so through its exported C API only, the way the vendor runtime and model_tool use
// it: hostile inputs never crash and always leave an error; keys from the registry and from the
// environment; encrypt/decrypt round trips, also from several threads at once, and into huge-page
// outputs.
//
//   test_plugin FIXTURE_DIR
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "bmcrypt.h"
#include "check.h"

namespace {

const uint8_t kKeyA[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                           17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
const uint8_t kKeyB[32] = {99};

std::string g_dir;  // scratch directory

struct Result {
  std::vector<uint8_t> bytes;
  int code = BMCRYPT_OK;
  std::string message;
};

Result call(uint8_t* (*fn)(const uint8_t*, uint64_t, uint64_t*), const uint8_t* in, uint64_t n) {
  Result r;
  uint64_t out_len = 777;
  uint8_t* out = fn(in, n, &out_len);
  if (out) {
    r.bytes.assign(out, out + out_len);
    bmcrypt_free(out);
  } else {
    r.code = bmcrypt_last_error_code();
    r.message = bmcrypt_last_error();
    CHECK_MSG(r.code != BMCRYPT_OK && !r.message.empty() && out_len == 0, "NULL without an error");
  }
  return r;
}

Result dec(const std::vector<uint8_t>& in) { return call(bmcrypt_decrypt, in.data(), in.size()); }
Result enc(const std::vector<uint8_t>& in) { return call(bmcrypt_encrypt, in.data(), in.size()); }

std::vector<uint8_t> random_bytes(size_t n, std::mt19937_64& rng) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng());
  return v;
}

void test_bad_arguments() {
  uint64_t n = 5;
  const uint8_t byte = 0;
  CHECK(!bmcrypt_decrypt(nullptr, 10, &n) && n == 0 && bmcrypt_last_error_code() == BMCRYPT_E_BAD_ARGUMENT);
  CHECK(!bmcrypt_decrypt(&byte, 0, &n) && bmcrypt_last_error_code() == BMCRYPT_E_BAD_ARGUMENT);
  CHECK(!bmcrypt_decrypt(&byte, 1, nullptr) && bmcrypt_last_error_code() == BMCRYPT_E_BAD_ARGUMENT);
  CHECK(!decrypt(nullptr, 0, nullptr) && *bmcrypt_last_error());
  CHECK(!bmcrypt_encrypt(nullptr, 10, &n) && bmcrypt_last_error_code() == BMCRYPT_E_BAD_ARGUMENT);
  CHECK(!encrypt(&byte, 1, nullptr) && bmcrypt_last_error_code() == BMCRYPT_E_BAD_ARGUMENT);
  CHECK(!bmcrypt_register_key(nullptr) && bmcrypt_last_error_code() == BMCRYPT_E_BAD_ARGUMENT);
  CHECK(!bmcrypt_register_key_file(nullptr) && !bmcrypt_register_key_file(""));
  CHECK(!bmcrypt_register_passphrase(nullptr) && !bmcrypt_register_passphrase(""));
  CHECK(!bmcrypt_register_identity(nullptr) && bmcrypt_last_error_code() == BMCRYPT_E_BAD_ARGUMENT);
  CHECK(!bmcrypt_register_identity_file(nullptr) && bmcrypt_last_error_code() == BMCRYPT_E_BAD_ARGUMENT);
  CHECK(!bmcrypt_register_identity_file("/nonexistent/device.identity") &&
        bmcrypt_last_error_code() == BMCRYPT_E_KEY_FILE);
  CHECK(!bmcrypt_verify_file(nullptr) && bmcrypt_last_error_code() == BMCRYPT_E_BAD_ARGUMENT);
  CHECK(!bmcrypt_load_bmodel(nullptr, "x") && bmcrypt_last_error_code() == BMCRYPT_E_BAD_ARGUMENT);
  CHECK(!bmcrypt_load_bmodel(reinterpret_cast<void*>(16), nullptr));
  bmcrypt_free(nullptr);
  CHECK(std::string(bmcrypt_version()) == BMCRYPT_EXPECTED_VERSION);
  CHECK(bmcrypt_register_key(kKeyA) && bmcrypt_last_error_code() == BMCRYPT_OK && !*bmcrypt_last_error());
}

void test_hostile_envelopes() {
  bmcrypt_clear_keys();
  CHECK(bmcrypt_register_key(kKeyA));
  std::mt19937_64 rng(42);

  for (size_t n : {1, 3, 4, 8, 151, 152, 168, 1000, 100000}) {
    CHECK(dec(random_bytes(n, rng)).code == BMCRYPT_E_CORRUPT);  // no BMCE magic
  }
  const std::vector<uint8_t> plaintext = random_bytes(3000, rng);
  const std::vector<uint8_t> env = enc(plaintext).bytes;
  CHECK(env.size() == 152 + 3000 + 16);
  CHECK(dec(env).bytes == plaintext);

  // Every truncation, and every single-bit change: refused, never a crash, never plaintext.
  for (size_t n = 1; n < env.size(); ++n) {
    const Result r = dec(std::vector<uint8_t>(env.begin(), env.begin() + long(n)));
    CHECK_MSG(r.code == BMCRYPT_E_TRUNCATED, "cut at " + std::to_string(n) + ": " + r.message);
  }
  std::vector<uint8_t> longer = env;
  longer.push_back(0);
  CHECK(dec(longer).code == BMCRYPT_E_CORRUPT);
  for (size_t i = 0; i < env.size(); ++i) {
    std::vector<uint8_t> bad = env;
    bad[i] ^= uint8_t(1u << (i % 8));
    const Result r = dec(bad);
    CHECK_MSG(r.code != BMCRYPT_OK, "bit flip at " + std::to_string(i) + " accepted");
  }

  // Huge declared lengths on a small buffer: refused before anything is allocated.
  for (uint64_t declared : {uint64_t(1) << 40, (uint64_t(1) << 40) + 1, ~uint64_t(0), uint64_t(1) << 63}) {
    for (uint8_t seg_log2 : {uint8_t(12), uint8_t(30)}) {
      std::vector<uint8_t> bad = env;
      bad[7] = seg_log2;
      for (int b = 0; b < 8; ++b) bad[8 + b] = uint8_t(declared >> (8 * b));
      const Result r = dec(bad);
      CHECK_MSG(r.code == (declared > (uint64_t(1) << 40) ? BMCRYPT_E_CORRUPT : BMCRYPT_E_TRUNCATED),
                "declared " + std::to_string(declared) + ": " + r.message);
    }
  }
  // Random mutations of several bytes at once, and random splices of valid headers.
  for (int round = 0; round < 2000; ++round) {
    std::vector<uint8_t> bad = env;
    const int edits = 1 + int(rng() % 6);
    for (int e = 0; e < edits; ++e) bad[rng() % bad.size()] = uint8_t(rng());
    if (rng() % 4 == 0) bad.resize(rng() % bad.size() + 1);
    if (bad == env) continue;
    CHECK(dec(bad).code != BMCRYPT_OK);
  }
}

void test_round_trips() {
  bmcrypt_clear_keys();
  CHECK(bmcrypt_register_key(kKeyA));
  std::mt19937_64 rng(7);
  for (size_t n : {size_t(0), size_t(1), size_t(1) << 20, (size_t(9) << 20) + 5}) {
    const std::vector<uint8_t> pt = random_bytes(n, rng);
    const Result sealed = enc(pt);
    CHECK(sealed.code == BMCRYPT_OK);
    const Result opened = dec(sealed.bytes);
    CHECK_MSG(opened.code == BMCRYPT_OK && opened.bytes == pt, "size " + std::to_string(n));
  }
  // One process-wide file: every envelope shares file_id and key block, until the keys change.
  const auto a = enc({1}).bytes, b = enc({2}).bytes;
  CHECK(std::memcmp(a.data() + 16, b.data() + 16, 16) == 0);
  CHECK(std::memcmp(a.data() + 48, b.data() + 48, 104) == 0);
  CHECK(std::memcmp(a.data() + 32, b.data() + 32, 16) != 0);  // fresh region salt
  bmcrypt_set_threads(1);
  const std::vector<uint8_t> big = random_bytes(5 << 20, rng);
  CHECK(dec(enc(big).bytes).bytes == big);
  bmcrypt_set_threads(0);

  // Another key: the old file's envelopes are a wrong key; both keys registered: fine.
  bmcrypt_clear_keys();
  CHECK(bmcrypt_register_key(kKeyB));
  const Result wrong = dec(a);
  CHECK(wrong.code == BMCRYPT_E_WRONG_KEY && wrong.message.find("key id") != std::string::npos);
  const auto c = enc({3}).bytes;
  CHECK(std::memcmp(a.data() + 16, c.data() + 16, 16) != 0);
  CHECK(bmcrypt_register_key(kKeyA));
  CHECK(dec(a).bytes == std::vector<uint8_t>{1} && dec(c).bytes == std::vector<uint8_t>{3});
}

void test_threads() {
  bmcrypt_clear_keys();
  CHECK(bmcrypt_register_key(kKeyA));
  std::mt19937_64 rng(9);
  const std::vector<uint8_t> pt = random_bytes((4 << 20) + 3, rng);
  const std::vector<uint8_t> env = enc(pt).bytes;
  std::vector<uint8_t> bad = env;
  bad[bad.size() / 2] ^= 1;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 4; ++i) {
        uint64_t n = 0;
        // A failure on this thread must not show on the others (thread-local errors).
        uint8_t* out = bmcrypt_decrypt(t % 2 ? bad.data() : env.data(), env.size(), &n);
        const bool ok = t % 2 ? !out && bmcrypt_last_error_code() == BMCRYPT_E_TAMPERED
                              : out && n == pt.size() && std::memcmp(out, pt.data(), n) == 0 &&
                                    bmcrypt_last_error_code() == BMCRYPT_OK;
        if (!ok) ++wrong;
        bmcrypt_free(out);
        uint8_t* sealed = bmcrypt_encrypt(pt.data(), 1000, &n);
        if (!sealed) ++wrong;
        bmcrypt_free(sealed);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(wrong == 0);
}

// The flags of the mapping that holds `p` in /proc/self/smaps ("" when none does).
std::string vma_flags(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<uintptr_t>(p);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' '))
      inside = at >= lo && at < hi;
    else if (inside && line.rfind("VmFlags:", 0) == 0)
      return line + " ";
  }
  return "";
}

bool mapped(const void* p) {
  std::ifstream maps("/proc/self/maps");
  const auto at = reinterpret_cast<uintptr_t>(p);
  for (std::string line; std::getline(maps, line);) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2 && at >= lo && at < hi) return true;
  }
  return false;
}

// A large output is advised as transparent huge pages before it is written (faulted in 2 MiB at
// a time: see csrc/callback/contract.cpp), holds the same bytes, and free() still releases it.
void test_huge_page_outputs() {
  bmcrypt_clear_keys();
  CHECK(bmcrypt_register_key(kKeyA));
  std::mt19937_64 rng(11);
  const std::vector<uint8_t> pt = random_bytes((40 << 20) + 5, rng);
  std::vector<uint8_t> env = enc(pt).bytes;
  uint64_t n = 0;
  uint8_t* out = bmcrypt_decrypt(env.data(), env.size(), &n);
  CHECK(out && n == pt.size() && std::memcmp(out, pt.data(), pt.size()) == 0);
  if (!out) return;
  const uint8_t* inner = out + (8 << 20);  // inside the whole 2 MiB frames of the block
  // A kernel with THP applies the advice; qemu-user (the SDK's aarch64 tests) accepts it and
  // does nothing, so there only the bytes and the free() are checked.
  if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0 &&
      std::getenv("BMCRYPT_TEST_EMULATED") == nullptr)
    CHECK_MSG(vma_flags(inner).find(" hg ") != std::string::npos, vma_flags(inner));
  std::free(out);  // as the vendor runtime releases it
#if !defined(__SANITIZE_ADDRESS__)  // AddressSanitizer keeps freed blocks in quarantine
  CHECK_MSG(!mapped(inner), "free() did not unmap the block");
#endif
  // Tampered: NULL, and the advised block (already written) is wiped and freed inside.
  env[env.size() - 20] ^= 1;
  CHECK(!bmcrypt_decrypt(env.data(), env.size(), &n) && n == 0 &&
        bmcrypt_last_error_code() == BMCRYPT_E_TAMPERED);
}

std::string write_key_file(const std::string& name, const uint8_t* key, mode_t mode) {
  static const char* hex = "0123456789abcdef";
  std::string text = "bmcrypt-key-v1\n# key id test\nkey: ";
  for (int i = 0; i < 32; ++i) (text += hex[key[i] >> 4]) += hex[key[i] & 15];
  text += "\n";
  const std::string path = g_dir + "/" + name;
  check::write_file(path, std::vector<uint8_t>(text.begin(), text.end()));
  chmod(path.c_str(), mode);
  return path;
}

void test_keys_from_files_and_environment() {
  bmcrypt_clear_keys();
  const std::string good = write_key_file("a.key", kKeyA, 0600);
  const std::string open_to_all = write_key_file("b.key", kKeyB, 0644);
  CHECK(bmcrypt_register_key_file(good.c_str()));
  CHECK(!bmcrypt_register_key_file(open_to_all.c_str()) && bmcrypt_last_error_code() == BMCRYPT_E_KEY_FILE);
  CHECK(std::string(bmcrypt_last_error()).find("other users") != std::string::npos);
  CHECK(!bmcrypt_register_key_file((g_dir + "/missing.key").c_str()) && bmcrypt_last_error_code() == BMCRYPT_E_KEY_FILE);
  CHECK(!bmcrypt_register_key_file(g_dir.c_str()) && bmcrypt_last_error_code() == BMCRYPT_E_KEY_FILE);
  const auto env = enc({4, 5, 6}).bytes;

  bmcrypt_clear_keys();
  CHECK(dec(env).code == BMCRYPT_E_NO_KEY);
  CHECK(enc({1}).code == BMCRYPT_E_NO_KEY);
  setenv("BMCRYPT_KEY_FILE", good.c_str(), 1);
  CHECK(dec(env).bytes == (std::vector<uint8_t>{4, 5, 6}));
  bmcrypt_clear_keys();
  setenv("BMCRYPT_KEY_FILE", open_to_all.c_str(), 1);
  CHECK(dec(env).code == BMCRYPT_E_KEY_FILE);
  unsetenv("BMCRYPT_KEY_FILE");

  // A passphrase from the environment, for encrypt (fresh salt, scrypt once per process file).
  bmcrypt_clear_keys();
  setenv("BMCRYPT_PASSPHRASE", "correct horse battery staple", 1);
  const auto penv = enc({7, 8}).bytes;
  CHECK(penv.size() > 48 && penv[48] == 2);
  bmcrypt_clear_keys();
  CHECK(dec(penv).bytes == (std::vector<uint8_t>{7, 8}));
  unsetenv("BMCRYPT_PASSPHRASE");
  bmcrypt_clear_keys();
  CHECK(bmcrypt_register_passphrase("wrong horse"));
  CHECK(dec(penv).code == BMCRYPT_E_WRONG_KEY);
  CHECK(bmcrypt_register_passphrase("correct horse battery staple"));
  CHECK(dec(penv).code == BMCRYPT_OK);
  bmcrypt_clear_keys();
}

void test_files(const std::string& fixtures) {
  bmcrypt_clear_keys();
  CHECK(bmcrypt_register_key(kKeyA));
  CHECK(!bmcrypt_verify_file((g_dir + "/missing.bmodel").c_str()) && bmcrypt_last_error_code() == BMCRYPT_E_IO);
  CHECK(!bmcrypt_verify_file(g_dir.c_str()) && bmcrypt_last_error_code() == BMCRYPT_E_IO);
  const std::string plain = fixtures + "/mlp_bm1684x_f16_nokernel.bmodel";
  CHECK(!bmcrypt_verify_file(plain.c_str()) && bmcrypt_last_error_code() == BMCRYPT_E_NOT_ENCRYPTED);
  // Refused by the verification before any runtime is looked for.
  CHECK(!bmcrypt_load_bmodel(reinterpret_cast<void*>(16), plain.c_str()) &&
        bmcrypt_last_error_code() == BMCRYPT_E_NOT_ENCRYPTED);
  const std::string empty = g_dir + "/empty.bmodel";
  check::write_file(empty, {});
  CHECK(!bmcrypt_verify_file(empty.c_str()) && bmcrypt_last_error_code() == BMCRYPT_E_NOT_A_BMODEL);
}

// bmcrypt_file_state tells the three kinds of file apart from their first bytes, without a key.
void test_file_state(const std::string& fixtures) {
  bmcrypt_clear_keys();
  CHECK(bmcrypt_file_state((fixtures + "/mlp_bm1684x_f16_nokernel.bmodel").c_str()) == 0);
  const std::vector<uint8_t> magic = {0xee, 0xaa, 0x55, 0xff};
  std::vector<uint8_t> sealed = magic;
  for (uint8_t b : std::vector<uint8_t>{0, 0, 0, 0, 'B', 'M', 'C', 'E', 1, 0, 0, 0}) sealed.push_back(b);
  check::write_file(g_dir + "/sealed.bmodel", sealed);
  CHECK(bmcrypt_file_state((g_dir + "/sealed.bmodel").c_str()) == 1);
  std::vector<uint8_t> foreign = magic;  // header_size 65: no plain header, no envelope
  for (uint8_t b : std::vector<uint8_t>{65, 0, 0, 0}) foreign.push_back(b);
  foreign.resize(64, 0x5a);
  check::write_file(g_dir + "/foreign.bmodel", foreign);
  CHECK(bmcrypt_file_state((g_dir + "/foreign.bmodel").c_str()) == 2);
  check::write_file(g_dir + "/notes.txt", {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'});
  CHECK(bmcrypt_file_state((g_dir + "/notes.txt").c_str()) == -1 &&
        bmcrypt_last_error_code() == BMCRYPT_E_NOT_A_BMODEL);
  CHECK(bmcrypt_file_state((g_dir + "/missing.bmodel").c_str()) == -1 &&
        bmcrypt_last_error_code() == BMCRYPT_E_IO);
  CHECK(bmcrypt_file_state(nullptr) == -1 && bmcrypt_last_error_code() == BMCRYPT_E_BAD_ARGUMENT);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
    return 2;
  }
  unsetenv("BMCRYPT_KEY_FILE");
  unsetenv("BMCRYPT_PASSPHRASE");
  char dir[] = "/tmp/bmcrypt-plugin-XXXXXX";
  if (!mkdtemp(dir)) return 2;
  g_dir = dir;
  test_bad_arguments();
  test_hostile_envelopes();
  test_round_trips();
  test_threads();
  test_huge_page_outputs();
  test_keys_from_files_and_environment();
  test_files(argv[1]);
  test_file_state(argv[1]);
  std::system(("rm -rf '" + g_dir + "'").c_str());
  return check::summary("test_plugin");
}
