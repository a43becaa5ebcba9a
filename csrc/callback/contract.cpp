#include "contract.h"

#include <sys/mman.h>

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

// Every large output buffer is new memory: glibc mmaps each block over 32 MiB (its largest
// dynamic mmap threshold) and free() unmaps it, so the decrypt that first writes it also has the
// kernel fault it in, 4 KiB at a time (on the decrypt's own threads, so in parallel already).
// Advising transparent huge pages before that first write makes it 2 MiB at a time. On the
// 2-core VM of bench/ciphers/decrypt_memory.cpp, bmcrypt_decrypt + free() of 1 GiB into a fresh
// buffer went from 262,145 faults, 1.6-2.8 GB/s and a 65-85 ms free() to ~1,500 faults,
// 5.9-6.5 GB/s and 3 ms, against 8.3-8.6 GB/s into faulted memory (0.2-0.3 -> 0.71-0.76 of
// it; most of what is left is the kernel zeroing every fresh page, which no writer avoids).
// Measured with memset, a 2 MiB-aligned posix_memalign block did the same; prefaulting with
// MADV_POPULATE_WRITE on all cores before the decrypt was slower. The advice is only advice: a
// no-op where THP is "never" (ignored where the kernel lacks THP); free() unmaps the block.
constexpr size_t kHugePage = size_t(2) << 20;        // x86-64 and 4 KiB-page arm64 PMD size
constexpr size_t kAdviseHugeFrom = size_t(32) << 20;  // smaller blocks may be reused heap

void advise_huge_pages(uint8_t* p, size_t n) {
  if (n < kAdviseHugeFrom) return;
  // Only the whole 2 MiB frames inside the block: a huge page must not take in memory outside
  // it (the malloc header, a neighbour on the heap). The two partial frames keep 4 KiB pages.
  const uintptr_t begin = (uintptr_t(p) + kHugePage - 1) & ~uintptr_t(kHugePage - 1);
  const uintptr_t end = (uintptr_t(p) + n) & ~uintptr_t(kHugePage - 1);
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

// A malloc'ed output buffer (the vendor frees it with free()), wiped and freed unless released.
class MallocBuffer {
 public:
  explicit MallocBuffer(uint64_t size) : size_(size_t(size)) {
    p_ = static_cast<uint8_t*>(std::malloc(size_ ? size_ : 1));
    if (!p_) throw std::bad_alloc();
    advise_huge_pages(p_, size_);
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
