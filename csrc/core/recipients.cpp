#include "recipients.h"

#include <cstring>
#include <set>
#include <string>

#include <cryptopp/aes.h>
#include <cryptopp/gcm.h>

#include "error.h"

namespace bmcrypt {
namespace {

constexpr uint8_t kKeyAreaMagic[4] = {'B', 'M', 'C', 'K'};
constexpr size_t kSecretOff = 4, kKeyIdOff = 36, kKeyCheckOff = 44, kNonceOff = 60, kWrappedOff = 72,
                 kTagOff = 104, kReservedOff = 120;
constexpr size_t kNonceSize = 12, kTagSize = 16;
constexpr size_t kAadSize = kFileIdSize + kNonceOff;  // file_id || stanza[0..60]

using Aad = std::array<uint8_t, kAadSize>;

Aad wrap_aad(const FileId& file_id, const uint8_t* stanza) {
  Aad aad;
  std::memcpy(aad.data(), file_id.data(), kFileIdSize);
  std::memcpy(aad.data() + kFileIdSize, stanza, kNonceOff);
  return aad;
}

[[noreturn]] void corrupt(const std::string& what) {
  throw Error(Errc::corrupt, "key area: " + what);
}

void validate_stanza(const uint8_t* s, unsigned index) {
  const std::string which = "stanza " + std::to_string(index + 1);
  switch (StanzaType(s[0])) {
    case StanzaType::key_file:
      if (!all_zero(s + 1, kKeyIdOff - 1)) corrupt(which + " (key file) has non-zero scrypt fields");
      break;
    case StanzaType::passphrase:
      if (!all_zero(s + kSecretOff + kFileIdSize, 16)) corrupt(which + " has non-zero reserved bytes");
      break;
    case StanzaType::x25519:
      if (!all_zero(s + 1, 3)) corrupt(which + " (X25519) has non-zero scrypt fields");
      break;
    default:
      throw Error(Errc::unsupported_version,
                  "key area: " + which + " has unknown type " + std::to_string(s[0]));
  }
  if (!all_zero(s + kReservedOff, kStanzaSize - kReservedOff)) corrupt(which + " has non-zero reserved bytes");
  if (StanzaType(s[0]) == StanzaType::passphrase) {  // after the reserved bytes (§8.2's order)
    const ScryptParams p{s[1], s[2], s[3]};
    if (p.log2n < kMinScryptLog2N || p.log2n > kMaxScryptLog2N || p.r == 0 || p.r > kMaxScryptR ||
        p.p == 0 || p.p > kMaxScryptP)
      corrupt(which + " has scrypt parameters out of bounds");
  }
}

Recipient symmetric(StanzaType type, const uint8_t* k) {
  Recipient r;
  r.type = type;
  r.k.Assign(k, kKeySize);
  return r;
}

// Writes the stanza wrapping dk for K (fields 0..36 already set, key id given).
void seal_stanza(uint8_t* s, const uint8_t* k, const KeyId& id, const uint8_t* dk, const FileId& file_id) {
  std::memcpy(s + kKeyIdOff, id.data(), id.size());
  const KeyCheck check = key_check_v2(k, file_id);
  std::memcpy(s + kKeyCheckOff, check.data(), check.size());
  random_bytes(s + kNonceOff, kNonceSize);
  const SecretBytes kek = wrap_key_v2(k, file_id);
  const Aad aad = wrap_aad(file_id, s);
  CryptoPP::GCM<CryptoPP::AES>::Encryption gcm;
  gcm.SetKeyWithIV(kek.data(), kek.size(), s + kNonceOff, kNonceSize);
  gcm.EncryptAndAuthenticate(s + kWrappedOff, s + kTagOff, kTagSize, s + kNonceOff, kNonceSize,
                             aad.data(), aad.size(), dk, kKeySize);
}

}  // namespace

bool valid_key_area_len(uint64_t len) {
  return len >= kKeyAreaHeaderSize + kStanzaSize && (len - kKeyAreaHeaderSize) % kStanzaSize == 0 &&
         (len - kKeyAreaHeaderSize) / kStanzaSize <= kMaxSlots;
}

void validate_key_area(ByteView area) {
  // In the order of §8.2: magic, slots, reserved bytes, count, then slot by slot.
  if (!valid_key_area_len(area.size)) corrupt("its length is not 16 + 128 x slots");
  const uint8_t* p = area.data;
  if (std::memcmp(p, kKeyAreaMagic, 4) != 0) corrupt("bad magic");
  const unsigned slots = p[4] | p[5] << 8, count = p[6] | p[7] << 8;
  if (slots == 0 || slots > kMaxSlots || kKeyAreaHeaderSize + kStanzaSize * slots != area.size)
    corrupt("its slot count does not match its length");
  if (!all_zero(p + 8, 8)) corrupt("non-zero reserved bytes");
  if (count == 0 || count > slots) corrupt("its stanza count is out of range");
  std::set<KeyId> ids;
  for (unsigned i = 0; i < slots; ++i) {
    const uint8_t* s = p + kKeyAreaHeaderSize + kStanzaSize * i;
    if (i >= count) {
      if (!all_zero(s, kStanzaSize)) corrupt("bytes in unused slot " + std::to_string(i + 1));
      continue;
    }
    validate_stanza(s, i);
    if (!ids.insert(Stanza(s).key_id()).second) corrupt("two stanzas with the same key id");
  }
}

FileId Stanza::scrypt_salt() const {
  FileId salt;
  std::memcpy(salt.data(), p_ + kSecretOff, salt.size());
  return salt;
}

X25519Key Stanza::ephemeral() const {
  X25519Key e;
  std::memcpy(e.data(), p_ + kSecretOff, e.size());
  return e;
}

KeyId Stanza::key_id() const {
  KeyId id;
  std::memcpy(id.data(), p_ + kKeyIdOff, id.size());
  return id;
}

std::vector<Stanza> stanzas_in_use(ByteView area) {
  std::vector<Stanza> out;
  const unsigned count = area.data[6] | area.data[7] << 8;
  for (unsigned i = 0; i < count; ++i) out.emplace_back(area.data + kKeyAreaHeaderSize + kStanzaSize * i);
  return out;
}

bool stanza_key_check_matches(const Stanza& stanza, const uint8_t* k, const FileId& file_id) {
  const KeyCheck mine = key_check_v2(k, file_id);
  return equal_ct(mine.data(), stanza.data() + kKeyCheckOff, mine.size());
}

SecretBytes unwrap_stanza(const Stanza& stanza, const uint8_t* k, const FileId& file_id,
                          const DkCheck& expected) {
  const uint8_t* s = stanza.data();
  const SecretBytes kek = wrap_key_v2(k, file_id);
  const Aad aad = wrap_aad(file_id, s);
  SecretBytes dk(kKeySize);
  CryptoPP::GCM<CryptoPP::AES>::Decryption gcm;
  gcm.SetKeyWithIV(kek.data(), kek.size(), s + kNonceOff, kNonceSize);
  if (!gcm.DecryptAndVerify(dk.data(), s + kTagOff, kTagSize, s + kNonceOff, kNonceSize, aad.data(),
                            aad.size(), s + kWrappedOff, kKeySize))
    throw Error(Errc::tampered, "a recipient stanza was altered (the data key does not authenticate)");
  const DkCheck check = dk_check(dk.data(), file_id);
  if (!equal_ct(check.data(), expected.data(), check.size()))
    throw Error(Errc::tampered, "a recipient stanza wraps another data key (dk_check differs)");
  return dk;
}

SecretBytes x25519_stanza_key_for(const Stanza& stanza, const uint8_t* secret,
                                  const X25519Key& recipient) {
  SecretBytes shared(32);
  const X25519Key e = stanza.ephemeral();
  if (!x25519_shared(secret, e, shared.data()))
    throw Error(Errc::tampered, "a recipient stanza was altered (X25519 gives an all-zero secret)");
  return x25519_stanza_key(shared.data(), e, recipient);
}

Recipient key_file_recipient(const uint8_t* k) { return symmetric(StanzaType::key_file, k); }

Recipient passphrase_recipient(const UserKey& key) {
  Recipient r = symmetric(StanzaType::passphrase, key.k.data());
  r.scrypt = key.scrypt;
  r.salt = key.salt;
  return r;
}

Recipient x25519_recipient(const X25519Key& public_key) {
  Recipient r;
  r.type = StanzaType::x25519;
  r.public_key = public_key;
  return r;
}

FileKeys new_file_keys_v2(const std::vector<Recipient>& recipients, unsigned slots, uint32_t policy,
                          const uint8_t* licence_key) {
  if (recipients.empty() || slots == 0 || slots > kMaxSlots || recipients.size() > slots)
    throw Error(Errc::bad_argument, "1..slots recipients and 1..255 slots");
  FileKeys keys;
  keys.version = 2;
  random_bytes(keys.file_id.data(), keys.file_id.size());
  keys.dk.New(kKeySize);
  random_bytes(keys.dk.data(), keys.dk.size());
  keys.dk_check = dk_check(keys.dk.data(), keys.file_id);
  keys.policy = policy;
  if (licence_key) std::memcpy(keys.licence_key.data(), licence_key, keys.licence_key.size());
  keys.key_area.assign(kKeyAreaHeaderSize + kStanzaSize * slots, 0);
  uint8_t* a = keys.key_area.data();
  std::memcpy(a, kKeyAreaMagic, 4);
  a[4] = uint8_t(slots);
  a[6] = uint8_t(recipients.size());
  for (size_t i = 0; i < recipients.size(); ++i) {
    const Recipient& r = recipients[i];
    uint8_t* s = a + kKeyAreaHeaderSize + kStanzaSize * i;
    s[0] = uint8_t(r.type);
    if (r.type == StanzaType::x25519) {
      SecretBytes e(32);
      random_bytes(e.data(), e.size());
      const X25519Key ephemeral = x25519_public(e.data());
      std::memcpy(s + kSecretOff, ephemeral.data(), ephemeral.size());
      SecretBytes shared(32);
      if (!x25519_shared(e.data(), r.public_key, shared.data()))
        throw Error(Errc::bad_argument, "an X25519 recipient of small order");
      const SecretBytes k = x25519_stanza_key(shared.data(), ephemeral, r.public_key);
      seal_stanza(s, k.data(), x25519_key_id(r.public_key), keys.dk.data(), keys.file_id);
      continue;
    }
    if (r.type == StanzaType::passphrase) {
      s[1] = r.scrypt.log2n;
      s[2] = r.scrypt.r;
      s[3] = r.scrypt.p;
      std::memcpy(s + kSecretOff, r.salt.data(), r.salt.size());
    }
    seal_stanza(s, r.k.data(), key_id(r.k.data()), keys.dk.data(), keys.file_id);
  }
  return keys;
}

}  // namespace bmcrypt
