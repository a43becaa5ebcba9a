// Offline licences (docs/FORMAT.md §8.5): a file whose E₁ sets policy bit 0 opens only with a
// licence signed (Ed25519) by the key named in E₁'s `licence_key`, for its `file_id`, not
// expired, and (when it lists serial numbers) for this device.
//
// The seam with the envelope reader: once E₁'s key area has given DK (so a wrong key still reads
// as wrong key) and before any segment of E₁ is decrypted, the key ring calls its licence hook
// for an E₁ that sets policy bit 0 (KeyRing::set_licence_check); install_licence_check() sets
//
//     require_licence(header.file_id, header.licence_key, global_licences());
//
// there (libbmcrypt.so and the Python module do when they load), which returns when one registered licence passes and throws Error with one of the licence_*
// codes (error.h) otherwise. Nothing here is a secret: licences and serial numbers are public.
#pragma once
#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bytes.h"

namespace bmcrypt {

constexpr size_t kLicenceKeySize = 32;   // an Ed25519 public key
constexpr size_t kLicenceSigSize = 64;   // an Ed25519 signature
constexpr size_t kLicenceMaxSerials = 32;
constexpr size_t kLicenceMaxSerialLen = 64;
constexpr size_t kLicenceMaxSize = 64 + kLicenceMaxSerials * (1 + kLicenceMaxSerialLen) + 64;

// A licence file, parsed: well-formed, its signature not yet checked.
struct Licence {
  std::array<uint8_t, 16> file_id{};
  uint64_t not_after = 0;  // the last second of validity, Unix time
  std::array<uint8_t, kLicenceKeySize> signer{};
  std::vector<std::string> serials;  // empty: any device
  std::vector<uint8_t> raw;          // the whole file, for the signature check
  std::string source;                // names it in messages (its path)
};

// Parses a licence's bytes (`where` names it in messages). Throws Error(licence_corrupt).
Licence parse_licence(const std::string& where, ByteView bytes);
// Reads and parses a licence file. Throws Error(io) when it cannot be read, else as above.
Licence read_licence_file(const std::string& path);

// The licences and the device serial number a process opens files with. Thread-safe.
class LicenceSet {
 public:
  void add(Licence licence);
  // The device's serial number as libbmlib's bm_get_sn reports it; std::nullopt: unknown.
  void set_device_sn(std::optional<std::string> sn);
  std::optional<std::string> device_sn() const;
  // Forgets every licence and the serial number. `read_environment_again`: whether
  // global_licences() may fill the set from BMCRYPT_LICENSE_FILE again (the C API's habit); the
  // Python package passes false, as its licences come with the keyring.
  void clear(bool read_environment_again = true);
  bool empty() const;

  // Returns when a registered licence lets this file open at Unix time `now`; else throws the
  // error of the licence that came furthest through §8.5's checks (the first registered on a
  // tie): licence_missing (none registered), licence_corrupt (not thrown here: parsing refuses),
  // licence_bad_signature, licence_other_file, licence_expired, licence_other_device.
  void require(const uint8_t file_id[16], const uint8_t licence_key[kLicenceKeySize],
               uint64_t now) const;

 private:
  mutable std::mutex mu_;
  std::vector<Licence> licences_;
  std::optional<std::string> device_sn_;
  bool env_loaded_ = false;  // BMCRYPT_LICENSE_FILE read (see global_licences)
  friend LicenceSet& global_licences();
  void load_environment_once();
};

// The process-wide set of the C API, the Python binding and the vendor callback. When nothing
// was registered, the first call reads BMCRYPT_LICENSE_FILE (one path, or several separated by
// ':'; BMCRYPT_LICENCE_FILE is read when it is unset). An unusable file there throws
// Error(licence_corrupt) or Error(io).
LicenceSet& global_licences();

// Makes the key ring check licences at E₁ (see the top of this file). Without it, a file that
// demands a licence is refused as unsupported (keyring.h).
void install_licence_check();

// The reader's call at E₁ (see the top of this file): `licences.require(…, time(nullptr))`.
void require_licence(const uint8_t file_id[16], const uint8_t licence_key[kLicenceKeySize],
                     const LicenceSet& licences);

}  // namespace bmcrypt
