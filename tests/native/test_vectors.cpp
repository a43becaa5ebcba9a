// Every envelope vector of tests/vectors/ through the public C API of libbmcrypt.so: the outcome
// (bmcrypt_last_error_code) and, for successes, the bytes the vendor runtime would get back.
// A version 2 vector with a `header` (its file's E1) has it opened first, as the runtime does: the
// library keeps that file's data key for the envelope under test.
//
//   test_vectors DIR
#include <dirent.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "bmcrypt.h"
#include "check.h"

namespace {

uint64_t load_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

const std::map<std::string, int> kOutcomes = {
    {"success", BMCRYPT_OK},
    {"wrong_key", BMCRYPT_E_WRONG_KEY},
    {"tampered", BMCRYPT_E_TAMPERED},
    {"truncated", BMCRYPT_E_TRUNCATED},
    {"corrupt", BMCRYPT_E_CORRUPT},
    {"unsupported_version", BMCRYPT_E_UNSUPPORTED_VERSION},
};

std::map<std::string, std::string> read_vector(const std::string& path) {
  std::map<std::string, std::string> fields;
  const std::vector<uint8_t> text = check::read_file(path);
  std::istringstream in(std::string(text.begin(), text.end()));
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t sep = line.find(": ");
    if (sep == std::string::npos) throw std::runtime_error(path + ": bad line");
    fields[line.substr(0, sep)] = line.substr(sep + 2);
  }
  return fields;
}

void run_vector(const std::string& name, const std::map<std::string, std::string>& v) {
  bmcrypt_clear_keys();
  if (v.count("key")) {
    CHECK(bmcrypt_register_key(check::from_hex(v.at("key")).data()));
  } else if (v.count("identity")) {
    CHECK(bmcrypt_register_identity(check::from_hex(v.at("identity")).data()));
  } else {
    CHECK(bmcrypt_register_passphrase(v.at("passphrase").c_str()));
  }
  const std::vector<uint8_t> envelope = check::from_hex(v.at("envelope"));
  const int expected = kOutcomes.at(v.at("expect"));

  uint64_t out_len = 12345;
  if (v.count("header")) {
    const std::vector<uint8_t> header = check::from_hex(v.at("header"));
    uint8_t* tail = bmcrypt_decrypt(header.data(), header.size(), &out_len);
    CHECK_MSG(tail && out_len == 56, name + ": its header does not open (" + bmcrypt_last_error() + ")");
    bmcrypt_free(tail);
  }
  uint8_t* out = bmcrypt_decrypt(envelope.data(), envelope.size(), &out_len);
  int got = out ? BMCRYPT_OK : bmcrypt_last_error_code();
  // The C API has no input for zero bytes: it is a bad argument there, truncated in the format.
  if (envelope.empty() && got == BMCRYPT_E_BAD_ARGUMENT) got = BMCRYPT_E_TRUNCATED;
  CHECK_MSG(got == expected, name + ": " + v.at("about") + " -- got code " + std::to_string(got) +
                                 " (" + bmcrypt_last_error() + ")");
  CHECK_MSG(out || (out_len == 0 && *bmcrypt_last_error()), name + ": failure without a message");
  if (!out) return;

  std::vector<uint8_t> plaintext = check::from_hex(v.at("plaintext"));
  const int kind = std::stoi(v.at("kind"));
  CHECK_MSG(envelope[6] == kind, name + ": kind");
  if (kind == 2) {  // the runtime gets the FlatBuffer alone: no restore record, no manifest
    const uint64_t restore_len = plaintext.size() >= 8 ? load_le64(plaintext.data() + plaintext.size() - 8) : 0;
    plaintext.resize(size_t(plaintext.size() - 64 - restore_len));
  }
  CHECK_MSG(out_len == plaintext.size() && std::equal(plaintext.begin(), plaintext.end(), out),
            name + ": plaintext differs");
  bmcrypt_free(out);

  // The same plaintext through the vendor-named symbol.
  out = decrypt(envelope.data(), envelope.size(), &out_len);
  CHECK_MSG(out && out_len == plaintext.size(), name + ": decrypt()");
  std::free(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s VECTOR_DIR\n", argv[0]);
    return 2;
  }
  unsetenv("BMCRYPT_KEY_FILE");
  unsetenv("BMCRYPT_PASSPHRASE");
  std::vector<std::string> names;
  if (DIR* d = opendir(argv[1])) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n.size() > 4 && n.compare(n.size() - 4, 4, ".txt") == 0) names.push_back(n);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  CHECK_MSG(!names.empty(), "no vectors found");
  std::map<std::string, int> per_outcome;
  for (const std::string& n : names) {
    const auto v = read_vector(std::string(argv[1]) + "/" + n);
    ++per_outcome[v.at("expect")];
    run_vector(n, v);
  }
  CHECK_MSG(per_outcome.size() == kOutcomes.size(), "not every outcome has a vector");
  std::printf("test_vectors: %zu vectors\n", names.size());
  return check::summary("test_vectors");
}
