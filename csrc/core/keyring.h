// The registry of user keys a process can open files with: raw keys (key files), passphrases and
// X25519 identities. A key block (version 1) or a stanza of the key area (version 2) names the key
// it needs by key id; the ring finds it, unwraps the data key DK, and caches DK per file so that a
// model with many envelopes pays for one unwrap (and, for passphrases, one scrypt per salt).
//
// Version 2 (§8.1): only E1 carries the key area. The DK of every E1 opened is kept by file_id
// (64 files, least recently used first out, wiped when dropped) and opens the E2 and E3 that
// follow. An E2/E3 of a file whose E1 was not opened is wrong_key ("open the header first"),
// unless this thread opened another file's E1 last (since the last clear()): then it is an
// envelope of another file in the file being read, tampered, as when a reader holds the E1.
#pragma once
#include <array>
#include <functional>
#include <list>
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
  KeyRing();
  void add_key(const uint8_t* k);  // 32 bytes
  void add_passphrase(std::string_view passphrase);
  void add_identity(const uint8_t* secret);  // the 32-byte X25519 secret r of an identity file
  // A key file or an identity file (keyfile.h); Error(key_file) when it cannot be used.
  void add_key_file(const std::string& path);
  // Forgets every key, derived key and cached data key (all wiped).
  void clear();
  bool empty() const;

  // DK of the file the envelope belongs to. Throws Error: no_key (nothing registered),
  // wrong_key (no registered key matches; in version 2 also an E2/E3 of a file whose E1 this
  // ring has not opened), tampered (the key block or a stanza was altered, or an E2/E3 with
  // another dk_check than its E1's). For a version 2 E1 whose policy requires a licence, the
  // licence check runs before DK is returned or kept, and DK is kept for the E2 and E3 that
  // follow only once `envelope` (the E1 `header` was parsed from) authenticates under it.
  SecretBytes data_key(const EnvelopeHeader& header, ByteView envelope);

  // Called with a version 2 E1 that demands a licence, after its DK was unwrapped and before it
  // is used; throws to refuse. Set once by the licence code; unset, such files are refused.
  using LicenceCheck = std::function<void(const EnvelopeHeader& e1, const KeyRing& ring)>;
  static void set_licence_check(LicenceCheck check);

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
  struct Identity {
    SecretBytes secret;
    X25519Key public_key;
    KeyId id;
  };
  struct FileDk {  // a version 2 file whose E1 was opened
    FileId file_id;
    DkCheck dk_check;
    SecretBytes dk;
  };
  using DkCacheKey = std::array<uint8_t, kFileIdSize + KeyBlock::kSize>;

  SecretBytes data_key_v1(const EnvelopeHeader& h);
  SecretBytes open_key_area(const EnvelopeHeader& e1);
  SecretBytes file_dk_v2(const EnvelopeHeader& h);
  void keep_file_dk(const EnvelopeHeader& e1, const SecretBytes& dk);
  const SecretBytes& derived(Passphrase& pass, const uint8_t* params_and_salt);

  // The candidate keys K for a key block (raw keys or passphrase-derived), matching id first.
  std::vector<const SecretBytes*> candidates(const KeyBlock& block);

  mutable std::mutex mu_;
  std::vector<RawKey> raw_;
  std::vector<Passphrase> passphrases_;
  std::vector<std::pair<KeySource, size_t>> order_;  // registration order, for writer_key()
  std::vector<Identity> identities_;
  std::map<DkCacheKey, SecretBytes> dk_cache_;
  std::list<FileDk> file_dks_;  // version 2, most recently used first
  uint64_t generation_;  // new at construction and at every clear(), unique in the process
};

// The process-wide ring used by the C API and the Python binding.
KeyRing& global_keyring();

}  // namespace bmcrypt
