// End to end against the vendor runtime on its CPU simulator (scripts/fetch-runtime.sh):
//
//   test_runtime LIBDIR load FIXTURE.bmodel    bmcrypt_load_bmodel: a typed file built from the
//                                              fixture loads; wrong key and tampered files are
//                                              refused before the runtime sees them
//   test_runtime LIBDIR lib FILE LIBBMCRYPT    the vendor's own bmrt_load_bmodel_with_decrypt_lib
//                                              with the plugin (keys from BMCRYPT_KEY_FILE)
//   test_runtime LIBDIR load2 FIXTURE OUT ID   a format 2 file for three recipients (a key, a
//                                              passphrase, an X25519 identity) loads with each
//                                              through bmcrypt_load_bmodel; written to OUT with
//                                              the identity file ID, for `lib` to load next
//
// After each successful load it calls bmrt_trace, which re-reads every coeff from device memory
// and prints "Total 0 errors" when all match their check_code: the caller checks that line.
// libbmrt.so is opened RTLD_LOCAL, as Python's ctypes does, so that bmcrypt_load_bmodel has to
// find it among the loaded objects.
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cryptopp/sha.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "bmcrypt.h"
#include "bmodel_encoder.h"
#include "check.h"
#include "keyblock.h"
#include "recipients.h"

namespace {

struct Runtime {
  int (*dev_request)(void**, int);
  void (*dev_free)(void*);
  void* (*create)(void*);
  void (*destroy)(void*);
  int (*network_number)(void*);
  void (*trace)(void*);
  bool (*load_with_decrypt_lib)(void*, const char*, const char*);
  void* device = nullptr;
  void* bmrt = nullptr;

  explicit Runtime(const std::string& libdir) {
    void* bmlib = dlopen((libdir + "/libbmlib.so").c_str(), RTLD_NOW | RTLD_GLOBAL);
    void* bmrt_lib = dlopen((libdir + "/libbmrt.so").c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!bmlib || !bmrt_lib) throw std::runtime_error(std::string("cannot load the runtime: ") + dlerror());
    dev_request = reinterpret_cast<decltype(dev_request)>(dlsym(bmlib, "bm_dev_request"));
    dev_free = reinterpret_cast<decltype(dev_free)>(dlsym(bmlib, "bm_dev_free"));
    create = reinterpret_cast<decltype(create)>(dlsym(bmrt_lib, "bmrt_create"));
    destroy = reinterpret_cast<decltype(destroy)>(dlsym(bmrt_lib, "bmrt_destroy"));
    network_number = reinterpret_cast<decltype(network_number)>(dlsym(bmrt_lib, "bmrt_get_network_number"));
    trace = reinterpret_cast<decltype(trace)>(dlsym(bmrt_lib, "bmrt_trace"));
    load_with_decrypt_lib =
        reinterpret_cast<decltype(load_with_decrypt_lib)>(dlsym(bmrt_lib, "bmrt_load_bmodel_with_decrypt_lib"));
    if (dev_request(&device, 0) != 0) throw std::runtime_error("bm_dev_request failed");
    bmrt = create(device);
  }
  ~Runtime() {
    if (bmrt) destroy(bmrt);
    if (device) dev_free(device);
  }
};

const uint8_t kKey[32] = {7, 7, 7, 1};
const uint8_t kOtherKey[32] = {8};

std::string temp_path(const char* name) { return "/tmp/bmcrypt-rt-" + std::to_string(getpid()) + "-" + name; }

void load_mode(Runtime& rt, const std::string& fixture) {
  const std::vector<uint8_t> plain = check::read_file(fixture);
  const std::vector<uint8_t> file =
      testing::encrypt_bmodel(plain, bmcrypt::new_file_keys(bmcrypt::raw_user_key(kKey)));
  const std::string good = temp_path("good.bmodel"), bad = temp_path("bad.bmodel");
  check::write_file(good, file);
  std::vector<uint8_t> tampered = file;
  tampered[tampered.size() - 1000] ^= 0x80;  // inside the last weights or in clear bytes
  check::write_file(bad, tampered);

  CHECK(bmcrypt_register_key(kOtherKey));
  CHECK(!bmcrypt_load_bmodel(rt.bmrt, good.c_str()) && bmcrypt_last_error_code() == BMCRYPT_E_WRONG_KEY);
  CHECK(bmcrypt_register_key(kKey));
  CHECK(!bmcrypt_load_bmodel(rt.bmrt, bad.c_str()) && bmcrypt_last_error_code() == BMCRYPT_E_TAMPERED);
  CHECK(rt.network_number(rt.bmrt) == 0);
  const bool loaded = bmcrypt_load_bmodel(rt.bmrt, good.c_str());
  CHECK_MSG(loaded, bmcrypt_last_error());
  CHECK(rt.network_number(rt.bmrt) > 0);
  std::fflush(stdout);
  if (loaded) rt.trace(rt.bmrt);
  std::fflush(stdout);
  unlink(good.c_str());
  unlink(bad.c_str());
}

// An identity file (FORMAT.md §8.3) of secret, mode 0600.
void write_identity(const std::string& path, const uint8_t* secret) {
  std::vector<uint8_t> f(72, 0);
  std::memcpy(f.data(), "BMCRYPT-X25519-1", 16);
  std::memcpy(f.data() + 16, secret, 32);
  uint8_t digest[32];
  CryptoPP::SHA256().CalculateDigest(digest, f.data(), 48);
  std::memcpy(f.data() + 48, digest, 24);
  check::write_file(path, f);
  chmod(path.c_str(), 0600);
}

void load2_mode(const std::string& libdir, const std::string& fixture, const std::string& out,
                const std::string& identity) {
  using namespace bmcrypt;
  const uint8_t device[32] = {42, 1, 2, 3};
  const std::vector<uint8_t> plain = check::read_file(fixture);
  const FileKeys keys = new_file_keys_v2({key_file_recipient(kKey), passphrase_recipient(new_passphrase_key("fleet")),
                                          x25519_recipient(x25519_public(device))});
  const std::vector<uint8_t> file = testing::encrypt_bmodel(plain, keys);
  check::write_file(out, file);
  write_identity(identity, device);

  for (int who = 0; who < 3; ++who) {
    Runtime rt(libdir);
    bmcrypt_clear_keys();
    CHECK(bmcrypt_register_key(kOtherKey));
    CHECK(!bmcrypt_load_bmodel(rt.bmrt, out.c_str()) && bmcrypt_last_error_code() == BMCRYPT_E_WRONG_KEY);
    if (who == 0) CHECK(bmcrypt_register_key(kKey));
    if (who == 1) CHECK(bmcrypt_register_passphrase("fleet"));
    if (who == 2) CHECK(bmcrypt_register_identity_file(identity.c_str()));
    const bool loaded = bmcrypt_load_bmodel(rt.bmrt, out.c_str());
    CHECK_MSG(loaded, bmcrypt_last_error());
    CHECK(rt.network_number(rt.bmrt) > 0);
    std::fflush(stdout);
    if (loaded) rt.trace(rt.bmrt);
    std::fflush(stdout);
  }
  bmcrypt_clear_keys();
}

void lib_mode(Runtime& rt, const std::string& file, const std::string& plugin) {
  CHECK(bmcrypt_verify_file(file.c_str()));
  const bool loaded = rt.load_with_decrypt_lib(rt.bmrt, file.c_str(), plugin.c_str());
  CHECK(loaded);
  CHECK(rt.network_number(rt.bmrt) > 0);
  std::fflush(stdout);
  if (loaded) rt.trace(rt.bmrt);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 2 ? argv[2] : "";
  if (!((mode == "load" && argc == 4) || (mode == "lib" && argc == 5) || (mode == "load2" && argc == 6))) {
    std::fprintf(stderr, "usage: %s LIBDIR load FIXTURE | LIBDIR lib FILE LIBBMCRYPT | LIBDIR load2 FIXTURE OUT ID\n", argv[0]);
    return 2;
  }
  if (mode == "load2") {
    load2_mode(argv[1], argv[3], argv[4], argv[5]);
    return check::summary("test_runtime");
  }
  {
    Runtime rt(argv[1]);
    if (mode == "load") load_mode(rt, argv[3]);
    else lib_mode(rt, argv[3], argv[4]);
  }
  return check::summary("test_runtime");
}
