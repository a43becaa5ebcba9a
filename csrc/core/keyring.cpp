#include "keyring.h"

#include <algorithm>
#include <cstring>

#include "error.h"

namespace bmcrypt {
namespace {

// Bounds on the caches: a process rarely opens more than a few files at once, and a full cache
// is simply dropped (the next envelope unwraps again).
constexpr size_t kMaxCachedDataKeys = 64;
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

}  // namespace

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

void KeyRing::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  raw_.clear();  // SecByteBlock wipes on destruction
  passphrases_.clear();
  order_.clear();
  dk_cache_.clear();
}

bool KeyRing::empty() const {
  std::lock_guard<std::mutex> lock(mu_);
  return order_.empty();
}

const SecretBytes& KeyRing::derived(Passphrase& pass, const KeyBlock& block) {
  std::array<uint8_t, 3 + kFileIdSize> key;
  std::memcpy(key.data(), block.data() + 1, key.size());  // log2N, r, p, salt: bytes 1..20
  auto it = pass.by_salt.find(key);
  if (it != pass.by_salt.end()) return it->second;
  if (pass.by_salt.size() >= kMaxDerivedPerPassphrase) pass.by_salt.clear();
  std::string_view text(reinterpret_cast<const char*>(pass.utf8.data()), pass.utf8.size());
  return pass.by_salt.emplace(key, passphrase_key_for(text, block)).first->second;
}

std::vector<const SecretBytes*> KeyRing::candidates(const KeyBlock& block) {
  std::vector<const SecretBytes*> keys;
  if (block.source() == KeySource::raw) {
    for (const RawKey& r : raw_) keys.push_back(&r.k);
  } else {
    for (Passphrase& p : passphrases_) keys.push_back(&derived(p, block));
  }
  // Try the key the block names first; the others only matter for telling errors apart.
  std::stable_partition(keys.begin(), keys.end(),
                        [&](const SecretBytes* k) { return key_id(k->data()) == block.key_id(); });
  return keys;
}

SecretBytes KeyRing::data_key(const EnvelopeHeader& h) {
  DkCacheKey cache_key;
  std::memcpy(cache_key.data(), h.file_id.data(), kFileIdSize);
  std::memcpy(cache_key.data() + kFileIdSize, h.key_block.data(), KeyBlock::kSize);

  std::lock_guard<std::mutex> lock(mu_);
  auto cached = dk_cache_.find(cache_key);
  if (cached != dk_cache_.end()) return cached->second;
  validate_key_block(h.key_block);
  if (order_.empty())
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

UserKey KeyRing::writer_key() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (order_.empty()) throw Error(Errc::no_key, "no key registered to encrypt with");
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
