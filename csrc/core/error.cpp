#include "error.h"

namespace bmcrypt {

const char* errc_name(Errc code) noexcept {
  switch (code) {
    case Errc::ok: return "ok";
    case Errc::bad_argument: return "bad_argument";
    case Errc::not_a_bmodel: return "not_a_bmodel";
    case Errc::truncated: return "truncated";
    case Errc::corrupt: return "corrupt";
    case Errc::unsupported_version: return "unsupported_version";
    case Errc::wrong_key: return "wrong_key";
    case Errc::tampered: return "tampered";
    case Errc::no_key: return "no_key";
    case Errc::key_file: return "key_file";
    case Errc::not_encrypted: return "not_encrypted";
    case Errc::foreign_encrypted: return "foreign_encrypted";
    case Errc::io: return "io";
    case Errc::runtime: return "runtime";
    case Errc::internal: return "internal";
    case Errc::licence_missing: return "no_licence";
    case Errc::licence_corrupt: return "corrupt_licence";
    case Errc::licence_bad_signature: return "bad_licence_signature";
    case Errc::licence_other_file: return "licence_for_another_file";
    case Errc::licence_expired: return "licence_expired";
    case Errc::licence_other_device: return "licence_for_another_device";
  }
  return "internal";
}

}  // namespace bmcrypt
