// Verification of a whole bmcrypt file (FORMAT.md §6), the check bmcrypt's own loader runs
// before the vendor runtime sees any byte: header, FlatBuffer, every weight envelope against its
// check_code, and the clear-region digest.
#pragma once
#include <cstdint>
#include <string>

#include "bytes.h"
#include "kdf.h"
#include "keyring.h"

namespace bmcrypt {

struct VerifyReport {
  bool typed = true;           // kinds 1/2/3 (bmcrypt) rather than 0 (model_tool's -lib plugin)
  bool clear_covered = false;  // the clear-region digest was checked (typed files only)
  uint64_t clear_bytes = 0;    // bytes of the binary region in clear
  uint64_t weight_envelopes = 0;  // distinct encrypted coeff regions
  uint64_t weight_bytes = 0;      // their plaintext bytes
  uint64_t nets = 0;
  KeyId key_id{};
};

// Throws Error naming the first failing step: not_a_bmodel, not_encrypted, foreign_encrypted,
// truncated, corrupt, unsupported_version, no_key, wrong_key, tampered (with what was altered).
VerifyReport verify_bmodel(ByteView file, KeyRing& ring);

}  // namespace bmcrypt
