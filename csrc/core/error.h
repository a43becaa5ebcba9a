// The one error type of the native core. Every failure the format can produce has its own code
// so that callers (the C API, the Python binding) map it without parsing text.
#pragma once
#include <stdexcept>
#include <string>

namespace bmcrypt {

// Values are part of the C API (include/bmcrypt.h, enum bmcrypt_status): never renumber.
enum class Errc : int {
  ok = 0,
  bad_argument = 1,       // the caller passed something unusable (NULL, bad size, bad option)
  not_a_bmodel = 2,       // no bmodel magic
  truncated = 3,          // shorter than its own header says
  corrupt = 4,            // malformed, or longer than its own header says
  unsupported_version = 5,
  wrong_key = 6,          // no registered key opens it (key id and key check differ)
  tampered = 7,           // the right key, but authentication failed
  no_key = 8,             // nothing registered and nothing in the environment
  key_file = 9,           // a key file that cannot be used (missing, unsafe mode, bad content)
  not_encrypted = 10,     // a plain bmodel where an encrypted one is needed
  foreign_encrypted = 11, // the vendor's encrypted layout without bmcrypt envelopes
  io = 12,                // a path that cannot be read
  runtime = 13,           // the vendor runtime is missing or refused the file
  internal = 14,          // out of memory, or a bug
  // Licences (FORMAT.md §8.5, licence.h): the file demands one and none lets it open.
  licence_missing = 15,       // no licence registered
  licence_corrupt = 16,       // a licence file that is not a well-formed licence
  licence_bad_signature = 17, // signed by another key than the file names, or the signature fails
  licence_other_file = 18,    // a licence for another file_id
  licence_expired = 19,       // now > not_after (the host's clock)
  licence_other_device = 20,  // lists serial numbers, and this device's is not one (or unknown)
};

// Stable lower-case name of a code ("wrong_key"), used by tests and the Python mapping.
const char* errc_name(Errc code) noexcept;

class Error : public std::runtime_error {
 public:
  Error(Errc code, const std::string& message) : std::runtime_error(message), code_(code) {}
  Errc code() const noexcept { return code_; }

 private:
  Errc code_;
};

}  // namespace bmcrypt
