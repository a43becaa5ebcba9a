// The key derivations of FORMAT.md §3.2 and §4: HKDF-SHA256 labels, key id, key check, scrypt.
// Everything secret is returned in a SecByteBlock, which wipes itself when released.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <cryptopp/secblock.h>

namespace bmcrypt {

using SecretBytes = CryptoPP::SecByteBlock;

constexpr size_t kKeySize = 32;     // K, DK, KEK, PK
constexpr size_t kFileIdSize = 16;  // file_id, region_salt, scrypt salt
constexpr size_t kKeyIdSize = 8;
constexpr size_t kKeyCheckSize = 16;

using FileId = std::array<uint8_t, kFileIdSize>;
using KeyId = std::array<uint8_t, kKeyIdSize>;
using KeyCheck = std::array<uint8_t, kKeyCheckSize>;

// key_id = SHA-256("bmcrypt key id v1" || K)[0..8]                                     (§4.2)
KeyId key_id(const uint8_t* k);
// key_check = HKDF(ikm=K, salt=file_id, info="bmcrypt v1 key check", L=16)            (§4.3)
KeyCheck key_check(const uint8_t* k, const FileId& file_id);
// KEK = HKDF(ikm=K, salt=file_id, info="bmcrypt v1 wrap", L=32)                       (§4.4)
SecretBytes wrap_key(const uint8_t* k, const FileId& file_id);
// PK = HKDF(ikm=DK, salt=region_salt, info="bmcrypt v<version> payload", L=32)   (§3.2, §8.1)
SecretBytes payload_key(const uint8_t* dk, const FileId& region_salt, unsigned version = 1);

// ---- version 2 (§8) ----
using DkCheck = std::array<uint8_t, 16>;
using X25519Key = std::array<uint8_t, 32>;  // an X25519 public key (R, E)
// dk_check = HKDF(ikm=DK, salt=file_id, info="bmcrypt v2 data key check", L=16)          (§8.1)
DkCheck dk_check(const uint8_t* dk, const FileId& file_id);
// key_check = HKDF(ikm=K, salt=file_id, info="bmcrypt v2 key check", L=16)               (§8.2)
KeyCheck key_check_v2(const uint8_t* k, const FileId& file_id);
// KEK = HKDF(ikm=K, salt=file_id, info="bmcrypt v2 wrap", L=32)                          (§8.2)
SecretBytes wrap_key_v2(const uint8_t* k, const FileId& file_id);
// key_id = SHA-256("bmcrypt key id v2 x25519" || R)[0..8]                                (§8.2)
KeyId x25519_key_id(const X25519Key& recipient);
// The recipient's public key R = X25519(r, 9).
X25519Key x25519_public(const uint8_t* secret);
// S = X25519(secret, other); false when S is all zero (a small-order point: tampered).
bool x25519_shared(const uint8_t* secret, const X25519Key& other, uint8_t shared[32]);
// K = HKDF(ikm=S, salt=E || R, info="bmcrypt v2 x25519", L=32)                           (§8.2)
SecretBytes x25519_stanza_key(const uint8_t* shared, const X25519Key& ephemeral,
                              const X25519Key& recipient);
// K = scrypt(passphrase, salt, N = 2^log2n, r, p, L = 32)                               (§4.1)
SecretBytes scrypt_key(std::string_view passphrase, const FileId& salt, unsigned log2n, unsigned r,
                       unsigned p);

// Bytes from the operating system's generator (getrandom / /dev/urandom).
void random_bytes(uint8_t* out, size_t n);
// Constant-time comparison for tags and key checks.
bool equal_ct(const uint8_t* a, const uint8_t* b, size_t n);
// Overwrites memory in a way the compiler cannot drop.
void wipe(void* p, size_t n);

}  // namespace bmcrypt
