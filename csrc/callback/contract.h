// What every C entry point shares (the C API of include/bmcrypt.h, and the callbacks the Python
// binding hands out): a thread-local last error, exception containment, the vendor callback
// contract, and keys from the environment.
#pragma once
#include <cstdint>
#include <string>

#include "error.h"
#include "keyring.h"

namespace bmcrypt {

void set_last_error(Errc code, const char* message) noexcept;
void clear_last_error() noexcept;
const char* last_error_text() noexcept;  // "" when the last call on this thread succeeded
Errc last_error_code() noexcept;

// Records an exception escaping a C entry point as the thread's last error.
void record_current_exception() noexcept;

// Runs f(); any exception becomes the thread's last error and `failed` is returned instead.
template <class R, class F>
R guarded(R failed, F&& f) noexcept {
  clear_last_error();
  try {
    return f();
  } catch (...) {
    record_current_exception();
    return failed;
  }
}

// The global ring; when nothing is registered, first fills it from BMCRYPT_KEY_FILE, or else
// BMCRYPT_PASSPHRASE (bmcrypt/keys.py's order). Throws Error(key_file) if that key file is unusable.
KeyRing& callback_keyring();

// The vendor's decrypt_func contract (docs: include/bmcrypt.h). Never throws; NULL on failure.
uint8_t* callback_decrypt(const uint8_t* in, uint64_t in_len, uint64_t* out_len) noexcept;
// model_tool's `-lib` encrypt: a kind-0 envelope under the process-wide plugin file keys.
uint8_t* callback_encrypt(const uint8_t* in, uint64_t in_len, uint64_t* out_len) noexcept;

// Forgets the plugin's process-wide file_id and DK (the next encrypt starts a new file).
void reset_callback_file_keys();

// bmcrypt_load_bmodel: verify the whole file, then hand it to the vendor runtime with
// callback_decrypt. Throws Error(runtime) when the runtime is missing or refuses the file.
void load_bmodel_verified(void* p_bmrt, const std::string& path);

}  // namespace bmcrypt
