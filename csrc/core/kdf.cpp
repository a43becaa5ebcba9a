#include "kdf.h"

#include <cryptopp/hkdf.h>
#include <cryptopp/misc.h>
#include <cryptopp/osrng.h>
#include <cryptopp/scrypt.h>
#include <cryptopp/sha.h>

#include <cstring>

namespace bmcrypt {
namespace {

void hkdf(const uint8_t* ikm, const uint8_t* salt, size_t salt_len, std::string_view info,
          uint8_t* out, size_t out_len) {
  CryptoPP::HKDF<CryptoPP::SHA256> h;
  h.DeriveKey(out, out_len, ikm, kKeySize, salt, salt_len,
              reinterpret_cast<const uint8_t*>(info.data()), info.size());
}

}  // namespace

KeyId key_id(const uint8_t* k) {
  static constexpr std::string_view kLabel = "bmcrypt key id v1";
  uint8_t digest[CryptoPP::SHA256::DIGESTSIZE];
  CryptoPP::SHA256 sha;
  sha.Update(reinterpret_cast<const uint8_t*>(kLabel.data()), kLabel.size());
  sha.Update(k, kKeySize);
  sha.Final(digest);
  KeyId id;
  std::memcpy(id.data(), digest, id.size());
  return id;
}

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

SecretBytes payload_key(const uint8_t* dk, const FileId& region_salt) {
  SecretBytes pk(kKeySize);
  hkdf(dk, region_salt.data(), region_salt.size(), "bmcrypt v1 payload", pk.data(), pk.size());
  return pk;
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
