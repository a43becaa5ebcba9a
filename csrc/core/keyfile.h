// Reading a key file (docs/keys.md, bmcrypt/keys.py): the 32-byte user key K of key source 1.
//
//   bmcrypt-key-v1
//   # key id 1a2b3c4d5e6f7081, created 2026-01-01T00:00:00Z
//   key: <K as 64 lower-case hex digits>
#pragma once
#include <string>

#include "kdf.h"

namespace bmcrypt {

// What a key file path holds (§8.3: the file's length and magic say which).
struct KeyMaterial {
  enum class Type { key, identity } type = Type::key;
  SecretBytes secret;  // K of a key file, or the X25519 secret r of an identity file
};

// Reads a key file or an identity file, with the checks of read_key_file.
KeyMaterial read_key_material(const std::string& path);

// Reads the key from path. Refuses (Error(key_file)) anything but a regular file, a file that
// group or others may access (mode & 077), more than 4096 bytes, or content other than the above.
SecretBytes read_key_file(const std::string& path);

// Parses a key file's content, exactly as bmcrypt/keys.py does: ASCII, LF line endings, the magic
// line, then `#` comment lines and exactly one `key: ` line; the final newline is optional.
SecretBytes parse_key_text(const std::string& where, const char* text, size_t size);

// An identity file (§8.3): "BMCRYPT-X25519-1" || r (32) || SHA-256(the 48 bytes before)[0..24].
constexpr size_t kIdentityFileSize = 72;
// True when the bytes have an identity file's length and magic.
bool is_identity_file(const uint8_t* bytes, size_t size);
// The secret r of an identity file's bytes; Error(key_file) when the checksum differs.
SecretBytes parse_identity(const std::string& where, const uint8_t* bytes, size_t size);

}  // namespace bmcrypt
