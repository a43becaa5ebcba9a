#include "keyring.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <optional>

#include "error.h"
#include "keyfile.h"
#include "recipients.h"

namespace bmcrypt {
namespace {

// Bounds on the caches: a process rarely opens more than a few files at once, and a full cache
// is simply dropped (the next envelope unwraps again).
constexpr size_t kMaxCachedDataKeys = 64;
constexpr size_t kMaxOpenedFiles = 64;  // version 2 files whose E1 was opened (LRU)
constexpr size_t kMaxDerivedPerPassphrase = 16;

std::string hex(const uint8_t* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

// The version 2 header envelope this thread opened last: the file it is reading, as far as the
// callback can tell (the runtime reads one file's regions in order on the loading thread).
struct LastHeader {
  uint64_t generation = 0;  // of the ring that opened it (0: none)
  FileId file_id{};
};
thread_local LastHeader t_last_header;

// Generations are unique across rings and clear() calls.
uint64_t next_generation() {
  static std::atomic<uint64_t> counter{0};
  return ++counter;
}

std::mutex g_licence_mu;
KeyRing::LicenceCheck& licence_check() {
  // Never destroyed, like global_keyring(): the runtime may call the plugin from exit handlers.
  static KeyRing::LicenceCheck* check = new KeyRing::LicenceCheck;
  return *check;
}

}  // namespace

KeyRing::KeyRing() : generation_(next_generation()) {}

void KeyRing::set_licence_check(LicenceCheck check) {
  std::lock_guard<std::mutex> lock(g_licence_mu);
  licence_check() = std::move(check);
}

void KeyRing::add_key(const uint8_t* k) {
  if (!k) throw Error(Errc::bad_argument, "no key given");
  std::lock_guard<std::mutex> lock(mu_);
  const KeyId id = key_id(k);
  for (const RawKey& r : raw_)
    if (r.id == id && equal_ct(r.k.data(), k, kKeySize)) return;  // already registered
  raw_.push_back({SecretBytes(k, kKeySize), id});
  order_.emplace_back(KeySource::raw, raw_.size() - 1);
}

void KeyRing::add_passphrase(std::string_view passphrase) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const Passphrase& p : passphrases_)
    if (p.utf8.size() == passphrase.size() &&
        equal_ct(p.utf8.data(), reinterpret_cast<const uint8_t*>(passphrase.data()), p.utf8.size()))
      return;
  Passphrase p;
  p.utf8.Assign(reinterpret_cast<const uint8_t*>(passphrase.data()), passphrase.size());
  passphrases_.push_back(std::move(p));
  order_.emplace_back(KeySource::passphrase, passphrases_.size() - 1);
}

void KeyRing::add_identity(const uint8_t* secret) {
  if (!secret) throw Error(Errc::bad_argument, "no identity given");
  Identity id;
  id.secret.Assign(secret, kKeySize);
  id.public_key = x25519_public(secret);
  id.id = x25519_key_id(id.public_key);
  std::lock_guard<std::mutex> lock(mu_);
  for (const Identity& i : identities_)
    if (i.id == id.id && i.public_key == id.public_key) return;  // already registered
  identities_.push_back(std::move(id));
}

void KeyRing::add_key_file(const std::string& path) {
  const KeyMaterial m = read_key_material(path);
  if (m.type == KeyMaterial::Type::identity)
    add_identity(m.secret.data());
  else
    add_key(m.secret.data());
}

void KeyRing::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  raw_.clear();  // SecByteBlock wipes on destruction
  passphrases_.clear();
  identities_.clear();
  order_.clear();
  dk_cache_.clear();
  file_dks_.clear();
  generation_ = next_generation();
}

bool KeyRing::empty() const {
  std::lock_guard<std::mutex> lock(mu_);
  return order_.empty() && identities_.empty();
}

const SecretBytes& KeyRing::derived(Passphrase& pass, const uint8_t* params_and_salt) {
  // log2N, r, p, salt: bytes 1..20 of a version 1 key block and of a version 2 stanza alike,
  // bounds already checked by their validation.
  std::array<uint8_t, 3 + kFileIdSize> key;
  std::memcpy(key.data(), params_and_salt, key.size());
  auto it = pass.by_salt.find(key);
  if (it != pass.by_salt.end()) return it->second;
  if (pass.by_salt.size() >= kMaxDerivedPerPassphrase) pass.by_salt.clear();
  std::string_view text(reinterpret_cast<const char*>(pass.utf8.data()), pass.utf8.size());
  FileId salt;
  std::memcpy(salt.data(), params_and_salt + 3, salt.size());
  SecretBytes k = scrypt_key(text, salt, key[0], key[1], key[2]);
  return pass.by_salt.emplace(key, std::move(k)).first->second;
}

std::vector<const SecretBytes*> KeyRing::candidates(const KeyBlock& block) {
  std::vector<const SecretBytes*> keys;
  if (block.source() == KeySource::raw) {
    for (const RawKey& r : raw_) keys.push_back(&r.k);
  } else {
    validate_key_block(block);
    for (Passphrase& p : passphrases_) keys.push_back(&derived(p, block.data() + 1));
  }
  // Try the key the block names first; the others only matter for telling errors apart.
  std::stable_partition(keys.begin(), keys.end(),
                        [&](const SecretBytes* k) { return key_id(k->data()) == block.key_id(); });
  return keys;
}

SecretBytes KeyRing::data_key(const EnvelopeHeader& h, ByteView envelope) {
  if (h.version != kFormatVersion2) return data_key_v1(h);
  if (h.kind != Kind::header_tail) return file_dk_v2(h);
  SecretBytes dk = open_key_area(h);
  if (h.licence_required()) {
    LicenceCheck check;
    {
      std::lock_guard<std::mutex> lock(g_licence_mu);
      check = licence_check();
    }
    if (!check)
      throw Error(Errc::unsupported_version,
                  "unsupported: licence required (this build of bmcrypt cannot check licences)");
    check(h, *this);  // outside mu_: the check may ask the ring
  }
  // E1's public header (its policy and licence key included) is authenticated by E1's own
  // segments: a DK kept before that would open the file's E2 and E3 behind a forged E1 (one
  // whose licence policy was stripped, say).
  SecretBytes scratch(size_t(h.plaintext_len));
  open_envelope(h, envelope, dk, scratch.data());
  keep_file_dk(h, dk);
  return dk;
}

SecretBytes KeyRing::data_key_v1(const EnvelopeHeader& h) {
  DkCacheKey cache_key;
  std::memcpy(cache_key.data(), h.file_id.data(), kFileIdSize);
  std::memcpy(cache_key.data() + kFileIdSize, h.key_block.data(), KeyBlock::kSize);

  std::lock_guard<std::mutex> lock(mu_);
  auto cached = dk_cache_.find(cache_key);
  if (cached != dk_cache_.end()) return cached->second;
  validate_key_block(h.key_block);
  if (order_.empty() && identities_.empty())  // an identity alone is a key, of the wrong kind
    throw Error(Errc::no_key, "no key registered (the file needs key id " +
                                  hex(h.key_block.key_id().data(), kKeyIdSize) + ")");

  const std::vector<const SecretBytes*> keys = candidates(h.key_block);
  if (keys.empty())
    throw Error(Errc::wrong_key, h.key_block.source() == KeySource::raw
                                     ? "the file was encrypted with a key file, not a passphrase"
                                     : "the file was encrypted with a passphrase, not a key file");
  bool id_seen = false;
  for (const SecretBytes* k : keys) {
    if (key_check_matches(k->data(), h.key_block, h.file_id)) {
      SecretBytes dk = unwrap_data_key(k->data(), h.key_block, h.file_id);
      if (dk_cache_.size() >= kMaxCachedDataKeys) dk_cache_.clear();
      dk_cache_.emplace(cache_key, dk);
      return dk;
    }
    id_seen = id_seen || key_id(k->data()) == h.key_block.key_id();
  }
  if (id_seen)
    throw Error(Errc::tampered, "the key block was altered (key check does not match its key id)");
  // A passphrase's key id differs per file (its salt does): naming it would not help.
  if (h.key_block.source() == KeySource::passphrase) throw Error(Errc::wrong_key, "wrong passphrase");
  throw Error(Errc::wrong_key,
              "wrong key: the file needs key id " + hex(h.key_block.key_id().data(), kKeyIdSize));
}

SecretBytes KeyRing::open_key_area(const EnvelopeHeader& e1) {
  const ByteView area(e1.key_area.data(), e1.key_area.size());
  validate_key_area(area);
  const std::vector<Stanza> stanzas = stanzas_in_use(area);
  std::lock_guard<std::mutex> lock(mu_);
  if (order_.empty() && identities_.empty()) {
    std::string ids;
    for (const Stanza& s : stanzas)
      if (s.type() != StanzaType::passphrase) ids += (ids.empty() ? "" : ", ") + hex(s.key_id().data(), kKeyIdSize);
    throw Error(Errc::no_key, "no key registered" + (ids.empty() ? std::string() : " (the file opens with key id " + ids + ")"));
  }
  // §8.2: every stanza a registered key names (raw keys and identities by key id, passphrases by
  // the id of the K derived with the stanza's salt) is tried; the first that opens wins. A named
  // stanza that fails (key check, all-zero X25519 secret, unwrap, dk_check) is tampering, and so
  // is a stanza whose key id matches none of ours but whose key check matches one of our keys.
  std::optional<Error> failure;
  bool id_changed = false;
  auto attempt = [&](const Stanza& s, const uint8_t* k, bool named) -> std::optional<SecretBytes> {
    if (!named) {
      id_changed = id_changed || stanza_key_check_matches(s, k, e1.file_id);
      return std::nullopt;
    }
    try {
      if (!stanza_key_check_matches(s, k, e1.file_id))
        throw Error(Errc::tampered, "a recipient stanza was altered (key check does not match its key id)");
      return unwrap_stanza(s, k, e1.file_id, e1.dk_check);
    } catch (const Error& e) {
      if (!failure) failure = e;
    }
    return std::nullopt;
  };
  std::string listed;
  bool passphrase_listed = false;
  for (const Stanza& s : stanzas) {
    const KeyId id = s.key_id();
    std::optional<SecretBytes> dk;
    switch (s.type()) {
      case StanzaType::key_file:
        for (const RawKey& r : raw_)
          if (!dk) dk = attempt(s, r.k.data(), r.id == id);
        break;
      case StanzaType::x25519:
        for (const Identity& i : identities_) {
          if (dk) break;
          SecretBytes k;
          try {
            k = x25519_stanza_key_for(s, i.secret.data(), i.public_key);
          } catch (const Error& e) {  // an all-zero secret: tampering if the stanza is ours
            if (i.id == id && !failure) failure = e;
            continue;
          }
          dk = attempt(s, k.data(), i.id == id);
        }
        break;
      case StanzaType::passphrase:
        passphrase_listed = true;
        for (Passphrase& p : passphrases_) {
          if (dk) break;
          const SecretBytes& k = derived(p, s.data() + 1);
          dk = attempt(s, k.data(), key_id(k.data()) == id);
        }
        break;
    }
    if (dk) return std::move(*dk);
    if (s.type() != StanzaType::passphrase) listed += (listed.empty() ? "" : ", ") + hex(id.data(), kKeyIdSize);
  }
  if (failure) throw *failure;
  if (id_changed)
    throw Error(Errc::tampered, "a recipient stanza was altered (its key id was changed: the key check "
                                "is that of a registered key)");
  std::string why = "wrong key: no registered key is a recipient of the file";
  if (!listed.empty()) why += " (it opens with key id " + listed + (passphrase_listed ? " or a passphrase)" : ")");
  else if (passphrase_listed) why += " (it opens with a passphrase)";
  throw Error(Errc::wrong_key, why);
}

void KeyRing::keep_file_dk(const EnvelopeHeader& e1, const SecretBytes& dk) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = file_dks_.begin(); it != file_dks_.end(); ++it)
    if (it->file_id == e1.file_id) {
      file_dks_.erase(it);  // SecByteBlock wipes
      break;
    }
  file_dks_.push_front({e1.file_id, e1.dk_check, dk});
  while (file_dks_.size() > kMaxOpenedFiles) file_dks_.pop_back();
  t_last_header = {generation_, e1.file_id};
}

SecretBytes KeyRing::file_dk_v2(const EnvelopeHeader& h) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = file_dks_.begin(); it != file_dks_.end(); ++it) {
    if (it->file_id != h.file_id) continue;
    if (!equal_ct(it->dk_check.data(), h.dk_check.data(), h.dk_check.size()))
      throw Error(Errc::tampered, "the envelope belongs to another file (its dk_check differs from its header's)");
    file_dks_.splice(file_dks_.begin(), file_dks_, it);
    return it->dk;
  }
  if (t_last_header.generation == generation_ && t_last_header.file_id != h.file_id)
    throw Error(Errc::tampered, "the envelope belongs to another file than the header envelope "
                                "opened before it (another file_id)");
  throw Error(Errc::wrong_key,
              "no key for this envelope: open the header first (its file's header envelope was not "
              "opened with a registered key in this process)");
}

UserKey KeyRing::writer_key() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (order_.empty())
    throw Error(Errc::no_key, identities_.empty()
                                  ? "no key registered to encrypt with"
                                  : "no key registered to encrypt with (an identity only decrypts)");
  const auto [source, index] = order_.front();
  if (source == KeySource::raw) return raw_user_key(raw_[index].k.data());
  const SecretBytes& utf8 = passphrases_[index].utf8;
  return new_passphrase_key(std::string_view(reinterpret_cast<const char*>(utf8.data()), utf8.size()));
}

KeyRing& global_keyring() {
  // Never destroyed: the vendor runtime may call the plugin from its own exit handlers.
  static KeyRing* ring = new KeyRing;
  return *ring;
}

}  // namespace bmcrypt
