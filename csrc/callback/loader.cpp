// bmcrypt_load_bmodel: the whole file is verified (FORMAT.md §6) before the vendor runtime reads a
// byte of it; the runtime then decrypts region by region through callback_decrypt.
#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "contract.h"
#include "licence.h"
#include "mapped_file.h"
#include "verify.h"

namespace bmcrypt {
namespace {

using DecryptFn = uint8_t* (*)(const uint8_t*, uint64_t, uint64_t*);
using LoadWithDecrypt = bool (*)(void*, const char*, DecryptFn);
constexpr const char* kLoadSymbol = "bmrt_load_bmodel_with_decrypt";

// The path of an already loaded libbmrt.so*, whatever directory it came from.
std::string loaded_runtime_path() {
  std::string found;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        const char* slash = std::strrchr(info->dlpi_name, '/');
        const char* base = slash ? slash + 1 : info->dlpi_name;
        if (std::strncmp(base, "libbmrt.so", 10) != 0) return 0;
        *static_cast<std::string*>(out) = info->dlpi_name;
        return 1;
      },
      &found);
  return found;
}

// The runtime that created p_bmrt must be the one we call: first the global scope, then a copy
// loaded privately (Python's ctypes loads with RTLD_LOCAL), and only when none is loaded at all,
// whatever libbmrt.so the library path finds. Handles are never closed: the runtime stays loaded.
LoadWithDecrypt find_runtime() {
  if (void* sym = dlsym(RTLD_DEFAULT, kLoadSymbol)) return reinterpret_cast<LoadWithDecrypt>(sym);
  void* handle = nullptr;
  const std::string loaded = loaded_runtime_path();
  if (!loaded.empty()) handle = dlopen(loaded.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (!handle) handle = dlopen("libbmrt.so", RTLD_NOW);
  void* sym = handle ? dlsym(handle, kLoadSymbol) : nullptr;
  if (!sym)
    throw Error(Errc::runtime, "the vendor runtime is not available (no libbmrt.so with " +
                                   std::string(kLoadSymbol) + ")");
  return reinterpret_cast<LoadWithDecrypt>(sym);
}

// The serial number of the device p_bmrt runs on, from libbmlib's bm_get_sn on the runtime's own
// handle (bmrt_get_bm_handle), both looked up in the process; nullopt when either is missing or
// the device has none (the simulator returns BM_NOT_SUPPORTED and writes nothing).
std::optional<std::string> device_serial(void* p_bmrt) {
  using GetHandle = void* (*)(void*);
  using GetSn = int (*)(void*, char*);
  auto get_handle = reinterpret_cast<GetHandle>(dlsym(RTLD_DEFAULT, "bmrt_get_bm_handle"));
  auto get_sn = reinterpret_cast<GetSn>(dlsym(RTLD_DEFAULT, "bm_get_sn"));
  void* handle = get_handle ? get_handle(p_bmrt) : nullptr;
  if (!handle || !get_sn) return std::nullopt;
  char sn[64] = {};  // bm_get_sn writes 17 characters and a NUL (libsophon's bmlib)
  if (get_sn(handle, sn) != 0) return std::nullopt;
  const std::string text(sn, strnlen(sn, sizeof sn - 1));
  if (text.empty()) return std::nullopt;
  return text;
}

}  // namespace

void load_bmodel_verified(void* p_bmrt, const std::string& path) {
  if (!p_bmrt) throw Error(Errc::bad_argument, "no runtime handle");
  KeyRing& ring = callback_keyring();
  LicenceSet& licences = global_licences();
  if (!licences.device_sn()) licences.set_device_sn(device_serial(p_bmrt));
  const MappedFile file(path);
  verify_bmodel(file.bytes(), ring);
  const LoadWithDecrypt load = find_runtime();
  // The runtime reads the inode that was verified, not whatever the path names by then. (Writes
  // into that inode in between are not prevented: the envelopes still authenticate in the
  // callback, the clear bytes would not be re-checked.)
  const std::string verified = ::access(file.inode_path().c_str(), R_OK) == 0 ? file.inode_path() : path;
  if (!load(p_bmrt, verified.c_str(), &callback_decrypt)) {
    const std::string why = last_error_code() != Errc::ok ? std::string(": ") + last_error_text() : "";
    throw Error(Errc::runtime, "the vendor runtime refused " + path + why);
  }
}

}  // namespace bmcrypt
