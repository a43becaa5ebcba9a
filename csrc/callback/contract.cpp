#include "contract.h"

#include <cryptopp/cryptlib.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <utility>

#include "envelope.h"
#include "keyfile.h"
#include "layout.h"

namespace bmcrypt {
namespace {

thread_local std::string t_error;
thread_local Errc t_code = Errc::ok;

// A malloc'ed output buffer (the vendor frees it with free()), wiped and freed unless released.
class MallocBuffer {
 public:
  explicit MallocBuffer(uint64_t size) : size_(size_t(size)) {
    p_ = static_cast<uint8_t*>(std::malloc(size_ ? size_ : 1));
    if (!p_) throw std::bad_alloc();
  }
  ~MallocBuffer() {
    if (p_) {
      wipe(p_, size_);
      std::free(p_);
    }
  }
  MallocBuffer(const MallocBuffer&) = delete;
  MallocBuffer& operator=(const MallocBuffer&) = delete;
  uint8_t* get() const { return p_; }
  uint8_t* release() { return std::exchange(p_, nullptr); }

 private:
  uint8_t* p_;
  size_t size_;
};

std::mutex g_file_keys_mutex;
std::shared_ptr<const FileKeys> g_file_keys;  // the plugin's "file", created by the first encrypt

std::shared_ptr<const FileKeys> callback_file_keys() {
  std::lock_guard<std::mutex> lock(g_file_keys_mutex);
  if (!g_file_keys) g_file_keys = std::make_shared<FileKeys>(new_file_keys(callback_keyring().writer_key()));
  return g_file_keys;
}

}  // namespace

void set_last_error(Errc code, const char* message) noexcept {
  t_code = code;
  try {
    t_error = message;
  } catch (...) {
    t_error.clear();  // out of memory: the code alone must do
  }
}

void clear_last_error() noexcept {
  t_code = Errc::ok;
  t_error.clear();
}

const char* last_error_text() noexcept { return t_error.c_str(); }
Errc last_error_code() noexcept { return t_code; }

void record_current_exception() noexcept {
  try {
    throw;
  } catch (const Error& e) {
    set_last_error(e.code(), e.what());
  } catch (const std::bad_alloc&) {
    set_last_error(Errc::internal, "out of memory");
  } catch (const CryptoPP::Exception& e) {
    set_last_error(Errc::internal, (std::string("crypto library: ") + e.what()).c_str());
  } catch (const std::exception& e) {
    set_last_error(Errc::internal, e.what());
  } catch (...) {
    set_last_error(Errc::internal, "unknown error");
  }
}

KeyRing& callback_keyring() {
  KeyRing& ring = global_keyring();
  if (ring.empty()) {  // the same order as bmcrypt/keys.py resolve_keys(): the key file first
    if (const char* path = std::getenv("BMCRYPT_KEY_FILE"); path && *path)
      ring.add_key_file(path);  // a key file or an identity file
    else if (const char* pass = std::getenv("BMCRYPT_PASSPHRASE"); pass && *pass)
      ring.add_passphrase(pass);
  }
  return ring;
}

void reset_callback_file_keys() {
  std::lock_guard<std::mutex> lock(g_file_keys_mutex);
  g_file_keys.reset();
}

uint8_t* callback_decrypt(const uint8_t* in, uint64_t in_len, uint64_t* out_len) noexcept {
  return guarded<uint8_t*>(nullptr, [&]() -> uint8_t* {
    if (out_len) *out_len = 0;
    if (!in || !out_len || in_len == 0) throw Error(Errc::bad_argument, "decrypt: no input");
    const ByteView envelope(in, size_t(in_len));
    const EnvelopeHeader h = parse_envelope(envelope);
    // What the runtime gets back: the header tail alone, the FlatBuffer without its restore
    // record (version 2) and manifest.
    uint64_t keep = h.plaintext_len;
    if (h.kind == Kind::header_tail && h.plaintext_len != kHeaderTailSize)
      throw Error(Errc::corrupt, "the header envelope does not hold 56 bytes");
    if (h.kind == Kind::flatbuffer && h.plaintext_len < kManifestSize)
      throw Error(Errc::corrupt, "no manifest after the FlatBuffer");
    // A version 2 E1 keeps its DK in the ring for the E2 and E3 that follow (and passes the
    // licence check first when its policy demands one).
    const SecretBytes dk = callback_keyring().data_key(h, envelope);
    MallocBuffer out(h.plaintext_len);
    open_envelope(h, envelope, dk, out.get());
    if (h.kind == Kind::header_tail) parse_header_tail(out.get());
    if (h.kind == Kind::flatbuffer)
      keep = parse_manifest(ByteView(out.get(), size_t(h.plaintext_len))).flatbuffer_len;
    // The restore record and manifest after `keep` are wiped when out is freed: only the
    // FlatBuffer is released (the runtime frees with free(), which does not wipe).
    if (keep < h.plaintext_len) wipe(out.get() + keep, size_t(h.plaintext_len - keep));
    *out_len = keep;
    return out.release();
  });
}

uint8_t* callback_encrypt(const uint8_t* in, uint64_t in_len, uint64_t* out_len) noexcept {
  return guarded<uint8_t*>(nullptr, [&]() -> uint8_t* {
    if (out_len) *out_len = 0;
    if (!out_len || (!in && in_len)) throw Error(Errc::bad_argument, "encrypt: no input");
    const uint64_t size = envelope_size(in_len, kDefaultSegLog2);
    const std::shared_ptr<const FileKeys> keys = callback_file_keys();
    MallocBuffer out(size);
    seal_envelope(*keys, Kind::generic, ByteView(in, size_t(in_len)), out.get());
    *out_len = size;
    return out.release();
  });
}

}  // namespace bmcrypt
