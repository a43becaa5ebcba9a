#include "keyblock.h"

#include <cstring>

#include <cryptopp/aes.h>
#include <cryptopp/gcm.h>

#include "bytes.h"
#include "error.h"

namespace bmcrypt {
namespace {

constexpr size_t kSaltOff = 4, kKeyIdOff = 20, kKeyCheckOff = 28, kNonceOff = 44, kWrappedOff = 56,
                 kTagOff = 88;
constexpr size_t kNonceSize = 12, kTagSize = 16;
// The wrap binds to the envelope bytes every v1 envelope shares: magic, version, algorithm. Not
// to kind and seg_log2 (bytes 6, 7): all envelopes of a file carry the same key block (§4).
constexpr uint8_t kFormatPrefix[6] = {'B', 'M', 'C', 'E', 1, 1};
constexpr size_t kAadSize = sizeof kFormatPrefix + kFileIdSize + KeyBlock::kAuthenticatedPrefix;

using Aad = std::array<uint8_t, kAadSize>;

// aad = "BMCE" || version || algorithm || file_id || key block[0..44]
Aad wrap_aad(const FileId& file_id, const KeyBlock& block) {
  Aad aad;
  uint8_t* p = aad.data();
  std::memcpy(p, kFormatPrefix, sizeof kFormatPrefix);
  std::memcpy(p + sizeof kFormatPrefix, file_id.data(), file_id.size());
  std::memcpy(p + sizeof kFormatPrefix + kFileIdSize, block.data(), KeyBlock::kAuthenticatedPrefix);
  return aad;
}

}  // namespace

KeyBlock::KeyBlock(const uint8_t* p) { std::memcpy(bytes_.data(), p, kSize); }

FileId KeyBlock::scrypt_salt() const {
  FileId salt;
  std::memcpy(salt.data(), bytes_.data() + kSaltOff, salt.size());
  return salt;
}

KeyId KeyBlock::key_id() const {
  KeyId id;
  std::memcpy(id.data(), bytes_.data() + kKeyIdOff, id.size());
  return id;
}

KeyCheck KeyBlock::key_check() const {
  KeyCheck check;
  std::memcpy(check.data(), bytes_.data() + kKeyCheckOff, check.size());
  return check;
}

void validate_key_block(const KeyBlock& block) {
  const uint8_t source = block.source_byte();
  if (source != uint8_t(KeySource::raw) && source != uint8_t(KeySource::passphrase))
    throw Error(Errc::unsupported_version,
                "unknown key source " + std::to_string(source) + " in the key block");
  if (block.source() == KeySource::raw) {
    if (!all_zero(block.data() + 1, kSaltOff - 1 + kFileIdSize))
      throw Error(Errc::corrupt, "the key block of a key file has non-zero scrypt fields");
  } else {
    const ScryptParams s = block.scrypt();
    if (s.log2n < kMinScryptLog2N || s.log2n > kMaxScryptLog2N || s.r == 0 || s.r > kMaxScryptR ||
        s.p == 0 || s.p > kMaxScryptP)
      throw Error(Errc::corrupt, "scrypt parameters out of bounds in the key block");
  }
}

UserKey raw_user_key(const uint8_t* k) {
  UserKey key;
  key.source = KeySource::raw;
  key.k.Assign(k, kKeySize);
  return key;
}

UserKey new_passphrase_key(std::string_view passphrase) {
  UserKey key;
  key.source = KeySource::passphrase;
  key.scrypt = kWriterScrypt;
  random_bytes(key.salt.data(), key.salt.size());
  key.k = scrypt_key(passphrase, key.salt, key.scrypt.log2n, key.scrypt.r, key.scrypt.p);
  return key;
}

SecretBytes passphrase_key_for(std::string_view passphrase, const KeyBlock& block) {
  validate_key_block(block);
  const ScryptParams s = block.scrypt();
  return scrypt_key(passphrase, block.scrypt_salt(), s.log2n, s.r, s.p);
}

KeyBlock wrap_data_key(const UserKey& key, const uint8_t* dk, const FileId& file_id) {
  KeyBlock block;
  uint8_t* b = block.data();
  b[0] = uint8_t(key.source);
  b[1] = key.scrypt.log2n;
  b[2] = key.scrypt.r;
  b[3] = key.scrypt.p;
  std::memcpy(b + kSaltOff, key.salt.data(), key.salt.size());
  const KeyId id = key_id(key.k.data());
  std::memcpy(b + kKeyIdOff, id.data(), id.size());
  const KeyCheck check = key_check(key.k.data(), file_id);
  std::memcpy(b + kKeyCheckOff, check.data(), check.size());
  random_bytes(b + kNonceOff, kNonceSize);

  const SecretBytes kek = wrap_key(key.k.data(), file_id);
  const Aad aad = wrap_aad(file_id, block);
  CryptoPP::GCM<CryptoPP::AES>::Encryption gcm;
  gcm.SetKeyWithIV(kek.data(), kek.size(), b + kNonceOff, kNonceSize);
  gcm.EncryptAndAuthenticate(b + kWrappedOff, b + kTagOff, kTagSize, b + kNonceOff, kNonceSize,
                             aad.data(), aad.size(), dk, kKeySize);
  return block;
}

FileKeys new_file_keys(const UserKey& key) {
  FileKeys keys;
  random_bytes(keys.file_id.data(), keys.file_id.size());
  keys.dk.New(kKeySize);
  random_bytes(keys.dk.data(), keys.dk.size());
  keys.key_block = wrap_data_key(key, keys.dk.data(), keys.file_id);
  return keys;
}

bool key_check_matches(const uint8_t* k, const KeyBlock& block, const FileId& file_id) {
  const KeyCheck mine = key_check(k, file_id);
  const KeyCheck theirs = block.key_check();
  return equal_ct(mine.data(), theirs.data(), mine.size());
}

SecretBytes unwrap_data_key(const uint8_t* k, const KeyBlock& block, const FileId& file_id) {
  if (key_id(k) != block.key_id())
    throw Error(Errc::tampered, "the key block was altered (key id does not match the key check)");
  const SecretBytes kek = wrap_key(k, file_id);
  const Aad aad = wrap_aad(file_id, block);
  const uint8_t* b = block.data();
  SecretBytes dk(kKeySize);
  CryptoPP::GCM<CryptoPP::AES>::Decryption gcm;
  gcm.SetKeyWithIV(kek.data(), kek.size(), b + kNonceOff, kNonceSize);
  if (!gcm.DecryptAndVerify(dk.data(), b + kTagOff, kTagSize, b + kNonceOff, kNonceSize,
                            aad.data(), aad.size(), b + kWrappedOff, kKeySize))
    throw Error(Errc::tampered, "the key block was altered (the data key does not authenticate)");
  return dk;
}

}  // namespace bmcrypt
