// Helpers shared by the format 2 tests (test_format2.cpp, test_format2_files.cpp).
#pragma once
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "envelope.h"
#include "error.h"
#include "keyring.h"
#include "layout.h"
#include "recipients.h"

namespace format2 {

using namespace bmcrypt;
using Bytes = std::vector<uint8_t>;

inline Bytes pattern(size_t n, uint32_t seed) {
  Bytes v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t((i * 2654435761u + seed * 0x9e3779b9u) >> 13);
  return v;
}

inline Errc code_of(const std::function<void()>& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return Errc::ok;
}

inline Bytes seal(const FileKeys& keys, Kind kind, const Bytes& pt, unsigned seg_log2 = 12) {
  Bytes env(sealed_size(keys, kind, pt.size(), seg_log2));
  seal_envelope(keys, kind, ByteView(pt.data(), pt.size()), env.data(), seg_log2);
  return env;
}

inline EnvelopeHeader parsed(const Bytes& env) { return parse_envelope(ByteView(env.data(), env.size())); }

// The plaintext of an envelope through the ring, or the error code.
inline Errc open_code(KeyRing& ring, const Bytes& env, Bytes* out = nullptr, std::string* message = nullptr) {
  return code_of([&] {
    const EnvelopeHeader h = parsed(env);
    const SecretBytes dk = ring.data_key(h, ByteView(env.data(), env.size()));
    Bytes plain(size_t(h.plaintext_len));
    open_envelope(h, ByteView(env.data(), env.size()), dk, plain.data());
    if (out) *out = plain;
  }, message);
}

inline const Bytes kKeyA = pattern(32, 1), kKeyB = pattern(32, 2), kIdentity = pattern(32, 3);
inline const Bytes kTail = [] {
  Bytes t(kHeaderTailSize, 0);
  store_le32(t.data(), 1234);
  return t;
}();

inline std::vector<Recipient> three_recipients() {
  return {key_file_recipient(kKeyA.data()), passphrase_recipient(new_passphrase_key("pass phrase")),
          x25519_recipient(x25519_public(kIdentity.data()))};
}

}  // namespace format2
