// The registry of user keys a process can open files with: raw keys (key files) and
// passphrases. A key block names the key it needs by key id; the ring finds it, unwraps the data
// key DK, and caches DK per file so that a model with many envelopes pays for one unwrap (and, for
// passphrases, one scrypt per salt).
#pragma once
#include <array>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "envelope.h"
#include "keyblock.h"

namespace bmcrypt {

class KeyRing {
 public:
  void add_key(const uint8_t* k);  // 32 bytes
  void add_passphrase(std::string_view passphrase);
  // Forgets every key, derived key and cached data key (all wiped).
  void clear();
  bool empty() const;

  // DK of the file the envelope belongs to. Throws Error: no_key (nothing registered),
  // wrong_key (no registered key matches), tampered (the key block was altered).
  SecretBytes data_key(const EnvelopeHeader& header);

  // The key new files are written with: the first one registered; a passphrase gets a fresh salt.
  // Throws Error(no_key) when the ring is empty.
  UserKey writer_key() const;

 private:
  struct RawKey {
    SecretBytes k;
    KeyId id;
  };
  struct Passphrase {
    SecretBytes utf8;
    std::map<std::array<uint8_t, 3 + kFileIdSize>, SecretBytes> by_salt;  // params || salt -> K
  };
  using DkCacheKey = std::array<uint8_t, kFileIdSize + KeyBlock::kSize>;

  // The candidate keys K for a key block (raw keys or passphrase-derived), matching id first.
  std::vector<const SecretBytes*> candidates(const KeyBlock& block);
  const SecretBytes& derived(Passphrase& pass, const KeyBlock& block);

  mutable std::mutex mu_;
  std::vector<RawKey> raw_;
  std::vector<Passphrase> passphrases_;
  std::vector<std::pair<KeySource, size_t>> order_;  // registration order, for writer_key()
  std::map<DkCacheKey, SecretBytes> dk_cache_;
};

// The process-wide ring used by the C API and the Python binding.
KeyRing& global_keyring();

}  // namespace bmcrypt
