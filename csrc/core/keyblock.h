// The key block of FORMAT.md §4 (104 bytes at envelope offset 48): which user key K opens the
// file, and the file's data key DK wrapped under K.
//
//   0 source | 1 log2N | 2 r | 3 p | 4 scrypt salt (16) | 20 key id (8) | 28 key check (16)
//   44 wrap nonce (12) | 56 wrapped DK (32) | 88 wrap tag (16)
#pragma once
#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "kdf.h"

namespace bmcrypt {

enum class KeySource : uint8_t { raw = 1, passphrase = 2 };

struct ScryptParams {
  uint8_t log2n = 0, r = 0, p = 0;
};
// What writers use (§4.1); readers accept anything within the bounds below.
constexpr ScryptParams kWriterScrypt{15, 8, 1};
// Cost bounds a reader enforces before deriving (§4.1).
constexpr unsigned kMinScryptLog2N = 10, kMaxScryptLog2N = 20, kMaxScryptR = 32, kMaxScryptP = 16;

class KeyBlock {
 public:
  static constexpr size_t kSize = 104;
  static constexpr size_t kAuthenticatedPrefix = 44;  // bytes 0..44 are the wrap's AAD

  KeyBlock() { bytes_.fill(0); }
  explicit KeyBlock(const uint8_t* p);

  const uint8_t* data() const { return bytes_.data(); }
  uint8_t* data() { return bytes_.data(); }
  uint8_t source_byte() const { return bytes_[0]; }
  KeySource source() const { return KeySource(bytes_[0]); }
  ScryptParams scrypt() const { return {bytes_[1], bytes_[2], bytes_[3]}; }
  FileId scrypt_salt() const;
  KeyId key_id() const;
  KeyCheck key_check() const;

  bool operator==(const KeyBlock& o) const { return bytes_ == o.bytes_; }

 private:
  std::array<uint8_t, kSize> bytes_;
};

// Refuses a key block this reader does not know (unknown source: unsupported version), whose
// scrypt cost is out of bounds, or a key file's block with scrypt fields set (corrupt), before
// any key is derived.
void validate_key_block(const KeyBlock& block);

// A user key K and how it was obtained, as needed to write a key block.
struct UserKey {
  KeySource source = KeySource::raw;
  ScryptParams scrypt;  // zero for raw keys
  FileId salt{};        // zero for raw keys
  SecretBytes k;
};

UserKey raw_user_key(const uint8_t* k);
// K for a passphrase with a fresh random salt and the writer's parameters.
UserKey new_passphrase_key(std::string_view passphrase);
// K for a passphrase under the salt and parameters of an existing key block.
SecretBytes passphrase_key_for(std::string_view passphrase, const KeyBlock& block);

// Builds a key block holding dk wrapped under key (fresh wrap nonce).
KeyBlock wrap_data_key(const UserKey& key, const uint8_t* dk, const FileId& file_id);

// What every envelope of one file shares: file_id, the data key DK, and the key block wrapping
// DK under the user key.
// Version 2 files (§8) carry no key block: E1 holds the key area and the policy, every envelope
// dk_check.
struct FileKeys {
  FileId file_id{};
  KeyBlock key_block;  // version 1
  SecretBytes dk;
  unsigned version = 1;
  DkCheck dk_check{};                  // version 2
  uint32_t policy = 0;                 // version 2, E1 only
  std::array<uint8_t, 32> licence_key{};
  std::vector<uint8_t> key_area;       // version 2, E1 only (recipients.h)
};

// A new file: random file_id and DK, wrapped under key.
FileKeys new_file_keys(const UserKey& key);

// True when K's key check matches the block (constant time).
bool key_check_matches(const uint8_t* k, const KeyBlock& block, const FileId& file_id);

// Unwraps DK with K whose key check already matched; throws Error(tampered) if the key id
// differs or the wrap does not authenticate.
SecretBytes unwrap_data_key(const uint8_t* k, const KeyBlock& block, const FileId& file_id);

}  // namespace bmcrypt
