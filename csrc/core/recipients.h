// The key area of a version 2 header envelope (FORMAT.md §8.2): the file's data key DK wrapped
// once per recipient, in a fixed number of 128-byte slots.
//
//   key area: 0 "BMCK" | 4 slots (u16) | 6 count (u16) | 8 zero (8) | 16 stanzas (128 x slots)
//   stanza:   0 type | 1 log2N | 2 r | 3 p | 4 salt (16) + 16 zero, or E (32) | 36 key id (8)
//             44 key check (16) | 60 wrap nonce (12) | 72 wrapped DK (32) | 104 tag (16) | 120 zero
#pragma once
#include <cstdint>
#include <vector>

#include "bytes.h"
#include "kdf.h"
#include "keyblock.h"

namespace bmcrypt {

enum class StanzaType : uint8_t { key_file = 1, passphrase = 2, x25519 = 3 };

constexpr size_t kKeyAreaHeaderSize = 16;
constexpr size_t kStanzaSize = 128;
constexpr unsigned kMaxSlots = 255;
constexpr unsigned kDefaultSlots = 16;

// 16 + 128 x slots with 1 <= slots <= 255.
bool valid_key_area_len(uint64_t len);

// The structural rules of §8.2, no key needed: magic, slots and count, zero bytes, stanza types
// (unknown: unsupported_version), scrypt bounds, unused slots all zero, no key id twice.
// Throws Error(corrupt / unsupported_version).
void validate_key_area(ByteView area);

// One stanza in use of a validated key area.
class Stanza {
 public:
  explicit Stanza(const uint8_t* p) : p_(p) {}
  const uint8_t* data() const { return p_; }
  StanzaType type() const { return StanzaType(p_[0]); }
  ScryptParams scrypt() const { return {p_[1], p_[2], p_[3]}; }
  FileId scrypt_salt() const;
  X25519Key ephemeral() const;
  KeyId key_id() const;

 private:
  const uint8_t* p_;
};

// The stanzas in use (the first `count`) of a validated key area.
std::vector<Stanza> stanzas_in_use(ByteView area);

// True when K's version 2 key check matches the stanza's (constant time).
bool stanza_key_check_matches(const Stanza& stanza, const uint8_t* k, const FileId& file_id);

// Unwraps DK with K whose key check matched, and checks it against the header's dk_check.
// Throws Error(tampered) when the wrap does not authenticate or the DK is another one.
SecretBytes unwrap_stanza(const Stanza& stanza, const uint8_t* k, const FileId& file_id,
                          const DkCheck& expected);

// K of a type 3 stanza for the identity (secret, its public key). Throws Error(tampered) for an
// all-zero shared secret.
SecretBytes x25519_stanza_key_for(const Stanza& stanza, const uint8_t* secret,
                                  const X25519Key& recipient);

// A recipient as a writer sees it.
struct Recipient {
  StanzaType type = StanzaType::key_file;
  SecretBytes k;            // types 1 and 2: K
  ScryptParams scrypt;      // type 2
  FileId salt{};            // type 2
  X25519Key public_key{};   // type 3: R
};
Recipient key_file_recipient(const uint8_t* k);
Recipient passphrase_recipient(const UserKey& passphrase_key);  // a UserKey of new_passphrase_key
Recipient x25519_recipient(const X25519Key& r);

// A new version 2 file: random file_id and DK, a key area of `slots` slots for the recipients.
FileKeys new_file_keys_v2(const std::vector<Recipient>& recipients, unsigned slots = kDefaultSlots,
                          uint32_t policy = 0, const uint8_t* licence_key = nullptr);

}  // namespace bmcrypt
