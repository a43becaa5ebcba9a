// Reading a key file (docs/keys.md, bmcrypt/keys.py): the 32-byte user key K of key source 1.
//
//   bmcrypt-key-v1
//   # key id 1a2b3c4d5e6f7081, created 2026-01-01T00:00:00Z
//   key: <K as 64 lower-case hex digits>
#pragma once
#include <string>

#include "kdf.h"

namespace bmcrypt {

// Reads the key from path. Refuses (Error(key_file)) anything but a regular file, a file that
// group or others may access (mode & 077), more than 4096 bytes, or content other than the above.
SecretBytes read_key_file(const std::string& path);

// Parses a key file's content, exactly as bmcrypt/keys.py does: ASCII, LF line endings, the magic
// line, then `#` comment lines and exactly one `key: ` line; the final newline is optional.
SecretBytes parse_key_text(const std::string& where, const char* text, size_t size);

}  // namespace bmcrypt
