#include "kdf.h"

#include <cryptopp/hkdf.h>
#include <cryptopp/misc.h>
#include <cryptopp/osrng.h>
#include <cryptopp/scrypt.h>
#include <cryptopp/sha.h>
#include <cryptopp/xed25519.h>

#include <cstring>

namespace bmcrypt {
namespace {

void hkdf(const uint8_t* ikm, const uint8_t* salt, size_t salt_len, std::string_view info,
          uint8_t* out, size_t out_len) {
  CryptoPP::HKDF<CryptoPP::SHA256> h;
  h.DeriveKey(out, out_len, ikm, kKeySize, salt, salt_len,
              reinterpret_cast<const uint8_t*>(info.data()), info.size());
}

KeyId labelled_id(std::string_view label, const uint8_t* k) {
  uint8_t digest[CryptoPP::SHA256::DIGESTSIZE];
  CryptoPP::SHA256 sha;
  sha.Update(reinterpret_cast<const uint8_t*>(label.data()), label.size());
  sha.Update(k, kKeySize);
  sha.Final(digest);
  KeyId id;
  std::memcpy(id.data(), digest, id.size());
  return id;
}

}  // namespace

KeyId key_id(const uint8_t* k) { return labelled_id("bmcrypt key id v1", k); }

KeyCheck key_check(const uint8_t* k, const FileId& file_id) {
  KeyCheck check;
  hkdf(k, file_id.data(), file_id.size(), "bmcrypt v1 key check", check.data(), check.size());
  return check;
}

SecretBytes wrap_key(const uint8_t* k, const FileId& file_id) {
  SecretBytes kek(kKeySize);
  hkdf(k, file_id.data(), file_id.size(), "bmcrypt v1 wrap", kek.data(), kek.size());
  return kek;
}

SecretBytes payload_key(const uint8_t* dk, const FileId& region_salt, unsigned version) {
  SecretBytes pk(kKeySize);
  hkdf(dk, region_salt.data(), region_salt.size(),
       version == 2 ? "bmcrypt v2 payload" : "bmcrypt v1 payload", pk.data(), pk.size());
  return pk;
}

DkCheck dk_check(const uint8_t* dk, const FileId& file_id) {
  DkCheck check;
  hkdf(dk, file_id.data(), file_id.size(), "bmcrypt v2 data key check", check.data(), check.size());
  return check;
}

KeyCheck key_check_v2(const uint8_t* k, const FileId& file_id) {
  KeyCheck check;
  hkdf(k, file_id.data(), file_id.size(), "bmcrypt v2 key check", check.data(), check.size());
  return check;
}

SecretBytes wrap_key_v2(const uint8_t* k, const FileId& file_id) {
  SecretBytes kek(kKeySize);
  hkdf(k, file_id.data(), file_id.size(), "bmcrypt v2 wrap", kek.data(), kek.size());
  return kek;
}

KeyId x25519_key_id(const X25519Key& recipient) {
  return labelled_id("bmcrypt key id v2 x25519", recipient.data());
}

X25519Key x25519_public(const uint8_t* secret) {
  // R = X25519(r, 9): the agreement with the base point, clamping as RFC 7748 does.
  X25519Key base{};
  base[0] = 9;
  SecretBytes shared(32);
  CryptoPP::x25519 curve;
  curve.Agree(shared.data(), secret, base.data(), false);
  X25519Key pub;
  std::memcpy(pub.data(), shared.data(), pub.size());
  return pub;
}

bool x25519_shared(const uint8_t* secret, const X25519Key& other, uint8_t shared[32]) {
  // Not Crypto++'s own small-order check: the format's rule is "an all-zero S", checked below.
  CryptoPP::x25519 curve;
  curve.Agree(shared, secret, other.data(), false);
  uint8_t acc = 0;
  for (int i = 0; i < 32; ++i) acc |= shared[i];
  return acc != 0;
}

SecretBytes x25519_stanza_key(const uint8_t* shared, const X25519Key& ephemeral,
                              const X25519Key& recipient) {
  uint8_t salt[64];
  std::memcpy(salt, ephemeral.data(), 32);
  std::memcpy(salt + 32, recipient.data(), 32);
  SecretBytes k(kKeySize);
  hkdf(shared, salt, sizeof salt, "bmcrypt v2 x25519", k.data(), k.size());
  return k;
}

SecretBytes scrypt_key(std::string_view passphrase, const FileId& salt, unsigned log2n, unsigned r,
                       unsigned p) {
  SecretBytes k(kKeySize);
  CryptoPP::Scrypt scrypt;
  scrypt.DeriveKey(k.data(), k.size(), reinterpret_cast<const uint8_t*>(passphrase.data()),
                   passphrase.size(), salt.data(), salt.size(), uint64_t(1) << log2n, r, p);
  return k;
}

void random_bytes(uint8_t* out, size_t n) { CryptoPP::OS_GenerateRandomBlock(false, out, n); }

bool equal_ct(const uint8_t* a, const uint8_t* b, size_t n) {
  return CryptoPP::VerifyBufsEqual(a, b, n);
}

void wipe(void* p, size_t n) {
  if (n) CryptoPP::SecureWipeBuffer(static_cast<uint8_t*>(p), n);
}

}  // namespace bmcrypt
