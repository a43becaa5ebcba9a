// The exported C API of libbmcrypt.so (include/bmcrypt.h): thin wrappers, nothing escapes.
#include "bmcrypt.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

#include "contract.h"
#include "keyfile.h"
#include "keyring.h"
#include "layout.h"
#include "licence.h"
#include "mapped_file.h"
#include "parallel.h"
#include "verify.h"

using namespace bmcrypt;

namespace {

// Files that demand a licence are checked against the registered licences (licence.h), from the
// moment the library is loaded: the vendor's decrypt_lib path calls `decrypt` with no set-up.
const bool g_licence_check = (install_licence_check(), true);

void require(bool ok, const char* what) {
  if (!ok) throw Error(Errc::bad_argument, what);
}

}  // namespace

extern "C" {

bool bmcrypt_register_key(const uint8_t key[32]) {
  return guarded(false, [&] {
    require(key != nullptr, "no key given");
    global_keyring().add_key(key);
    return true;
  });
}

bool bmcrypt_register_key_file(const char* path) {
  return guarded(false, [&] {
    require(path && *path, "no key file path given");
    global_keyring().add_key_file(path);
    return true;
  });
}

bool bmcrypt_register_identity(const uint8_t secret[32]) {
  return guarded(false, [&] {
    require(secret != nullptr, "no identity given");
    global_keyring().add_identity(secret);
    return true;
  });
}

bool bmcrypt_register_identity_file(const char* path) {
  // The same as bmcrypt_register_key_file: the file's length and magic say what it holds.
  return bmcrypt_register_key_file(path);
}

bool bmcrypt_register_passphrase(const char* passphrase) {
  return guarded(false, [&] {
    require(passphrase && *passphrase, "the passphrase is empty");
    global_keyring().add_passphrase(passphrase);
    return true;
  });
}

void bmcrypt_clear_keys(void) {
  guarded(false, [] {
    global_keyring().clear();
    reset_callback_file_keys();
    return true;
  });
}

bool bmcrypt_register_licence_file(const char* path) {
  return guarded(false, [&] {
    require(path && *path, "no licence file path given");
    global_licences().add(read_licence_file(path));
    return true;
  });
}

bool bmcrypt_register_licence(const uint8_t* licence, uint64_t len) {
  return guarded(false, [&] {
    require(licence != nullptr && len > 0, "no licence given");
    global_licences().add(parse_licence("the licence given", ByteView(licence, size_t(len))));
    return true;
  });
}

bool bmcrypt_set_device_sn(const char* sn) {
  return guarded(false, [&] {
    if (sn == nullptr) {
      global_licences().set_device_sn(std::nullopt);
      return true;
    }
    const size_t n = std::strlen(sn);
    require(n >= 1 && n <= kLicenceMaxSerialLen, "a serial number is 1..64 bytes");
    global_licences().set_device_sn(std::string(sn, n));
    return true;
  });
}

void bmcrypt_clear_licences(void) {
  guarded(false, [] {
    global_licences().clear();
    return true;
  });
}

const char* bmcrypt_last_error(void) { return last_error_text(); }

int bmcrypt_last_error_code(void) { return int(last_error_code()); }

uint8_t* bmcrypt_decrypt(const uint8_t* in, uint64_t in_len, uint64_t* out_len) {
  return callback_decrypt(in, in_len, out_len);
}

uint8_t* bmcrypt_encrypt(const uint8_t* in, uint64_t in_len, uint64_t* out_len) {
  return callback_encrypt(in, in_len, out_len);
}

uint8_t* decrypt(const uint8_t* in, uint64_t in_len, uint64_t* out_len) {
  return callback_decrypt(in, in_len, out_len);
}

uint8_t* encrypt(const uint8_t* in, uint64_t in_len, uint64_t* out_len) {
  return callback_encrypt(in, in_len, out_len);
}

void bmcrypt_free(void* p) {
  if (!p) return;
  wipe(p, malloc_usable_size(p));
  std::free(p);
}

int bmcrypt_file_state(const char* path) {
  return guarded(-1, [&] {
    require(path && *path, "no path given");
    const MappedFile file(path);
    switch (classify_bmodel(file.bytes())) {
      case FileState::plain: return 0;
      case FileState::bmcrypt: return 1;
      case FileState::foreign: return 2;
    }
    return -1;
  });
}

bool bmcrypt_verify_file(const char* path) {
  return guarded(false, [&] {
    require(path && *path, "no path given");
    const MappedFile file(path);
    verify_bmodel(file.bytes(), callback_keyring());
    return true;
  });
}

bool bmcrypt_load_bmodel(void* p_bmrt, const char* path) {
  return guarded(false, [&] {
    require(path && *path, "no path given");
    load_bmodel_verified(p_bmrt, path);
    return true;
  });
}

void bmcrypt_set_threads(unsigned n) { set_max_threads(n); }

const char* bmcrypt_version(void) { return BMCRYPT_VERSION; }

}  // extern "C"
