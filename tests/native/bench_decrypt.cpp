// Decrypt throughput of one large envelope (not a test): the engine on 1 thread and on all
// threads, and the two Crypto++ GHASH table sizes on one thread with the same segment loop.
//
//   bench_decrypt [MiB=256] [rounds=3]
// Compare with: openssl speed -evp aes-256-gcm -bytes 1048576 -seconds 3
// With OpenSSL's headers present it also runs the same segment loop through OpenSSL's EVP.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <cryptopp/aes.h>
#include <cryptopp/gcm.h>
#ifdef BMCRYPT_BENCH_OPENSSL
#include <openssl/evp.h>
#endif

#include "envelope.h"
#include "keyring.h"
#include "parallel.h"

using namespace bmcrypt;

namespace {

// Best of `rounds` runs, by wall-clock time and by this process's CPU time. `openssl speed`
// divides by CPU user time unless given -elapsed, so on a busy machine compare CPU with CPU.
struct Rate {
  double wall_gbps = 0, cpu_gbps = 0;
};

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

template <class F>
Rate best(size_t bytes, int rounds, F&& f) {
  Rate r;
  for (int i = 0; i < rounds; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    f();
    const double cpu = cpu_seconds() - c0;
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.wall_gbps = std::max(r.wall_gbps, double(bytes) / wall / 1e9);
    r.cpu_gbps = std::max(r.cpu_gbps, double(bytes) / cpu / 1e9);
  }
  return r;
}

void report(const char* what, const Rate& r) {
  std::printf("%-36s %7.3f GB/s wall  %7.3f GB/s per CPU-second\n", what, r.wall_gbps, r.cpu_gbps);
}

// The engine's segment loop on one thread, with a chosen GHASH table size.
template <CryptoPP::GCM_TablesOption Tables>
void open_with_tables(const EnvelopeHeader& h, const uint8_t* env, const SecretBytes& dk, uint8_t* out) {
  const SecretBytes pk = payload_key(dk.data(), h.region_salt);
  typename CryptoPP::GCM<CryptoPP::AES, Tables>::Decryption gcm;
  uint8_t nonce[12] = {};
  gcm.SetKeyWithIV(pk.data(), pk.size(), nonce, 12);
  const uint64_t s = h.segment_size(), n = h.segment_count();
  for (uint64_t i = 0; i < n; ++i) {
    std::memset(nonce, 0, 12);
    for (int b = 0; b < 8; ++b) nonce[10 - b] = uint8_t(i >> (8 * b));
    nonce[11] = i + 1 == n;
    const size_t len = size_t(std::min(s, h.plaintext_len - i * s));
    const uint8_t* sealed = env + kEnvelopeHeaderSize + i * (s + 16);
    if (!gcm.DecryptAndVerify(out + i * s, sealed + len, 16, nonce, 12, h.public_header.data(), 48, sealed, len))
      std::abort();
  }
}

#ifdef BMCRYPT_BENCH_OPENSSL
// The same segment loop with OpenSSL's EVP AES-256-GCM: what an OpenSSL segment backend would give.
void open_with_openssl(const EnvelopeHeader& h, const uint8_t* env, const SecretBytes& dk, uint8_t* out) {
  const SecretBytes pk = payload_key(dk.data(), h.region_salt);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, pk.data(), nullptr);
  const uint64_t s = h.segment_size(), n = h.segment_count();
  for (uint64_t i = 0; i < n; ++i) {
    uint8_t nonce[12] = {};
    for (int b = 0; b < 8; ++b) nonce[10 - b] = uint8_t(i >> (8 * b));
    nonce[11] = i + 1 == n;
    const size_t len = size_t(std::min(s, h.plaintext_len - i * s));
    const uint8_t* sealed = env + kEnvelopeHeaderSize + i * (s + 16);
    int outl = 0;
    EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce);
    EVP_DecryptUpdate(ctx, nullptr, &outl, h.public_header.data(), 48);
    EVP_DecryptUpdate(ctx, out + i * s, &outl, sealed, int(len));
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, const_cast<uint8_t*>(sealed + len));
    if (EVP_DecryptFinal_ex(ctx, out + i * s + outl, &outl) != 1) std::abort();
  }
  EVP_CIPHER_CTX_free(ctx);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 256;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
  const size_t n = mib << 20;

  uint8_t k[32] = {1};
  KeyRing ring;
  ring.add_key(k);
  const FileKeys keys = new_file_keys(raw_user_key(k));
  std::vector<uint8_t> plain(n, 0x5a), env(envelope_size(n, kDefaultSegLog2)), out(n);
  seal_envelope(keys, Kind::weights, ByteView(plain.data(), n), env.data());
  const EnvelopeHeader h = parse_envelope(ByteView(env.data(), env.size()));
  const SecretBytes dk = ring.data_key(h, ByteView(env.data(), env.size()));
  std::memset(out.data(), 1, n);  // fault the pages in before timing

  std::printf("envelope: %zu MiB plaintext, %llu segments of 1 MiB, %u hardware threads\n", mib,
              (unsigned long long)h.segment_count(), max_threads());
  auto engine = [&] { open_envelope(h, ByteView(env.data(), env.size()), dk, out.data()); };
  report("crypto++ GCM_2K_Tables, 1 thread",
         best(n, rounds, [&] { open_with_tables<CryptoPP::GCM_2K_Tables>(h, env.data(), dk, out.data()); }));
  report("crypto++ GCM_64K_Tables, 1 thread",
         best(n, rounds, [&] { open_with_tables<CryptoPP::GCM_64K_Tables>(h, env.data(), dk, out.data()); }));
#ifdef BMCRYPT_BENCH_OPENSSL
  report("openssl EVP (same segments), 1 thread",
         best(n, rounds, [&] { open_with_openssl(h, env.data(), dk, out.data()); }));
#endif
  {
    // What `openssl speed -bytes 1048576` measures: one 1 MiB buffer, hot in cache, over and over.
    const uint8_t* first = env.data() + kEnvelopeHeaderSize;
    const SecretBytes pk = payload_key(dk.data(), h.region_salt);
    CryptoPP::GCM<CryptoPP::AES>::Decryption gcm;
    uint8_t nonce[12] = {};
    gcm.SetKeyWithIV(pk.data(), pk.size(), nonce, 12);
    report("crypto++ GCM, hot 1 MiB buffer, 1 thread", best(n, rounds, [&] {
      for (size_t i = 0; i < (n >> 20); ++i)
        if (!gcm.DecryptAndVerify(out.data(), first + (1 << 20), 16, nonce, 12, h.public_header.data(), 48,
                                  first, 1 << 20))
          std::abort();  // segment 0 of many: nonce 0, not last
    }));
  }
  set_max_threads(1);
  report("open_envelope, 1 thread", best(n, rounds, engine));
  set_max_threads(0);
  const std::string all = "open_envelope, " + std::to_string(max_threads()) + " threads";
  report(all.c_str(), best(n, rounds, engine));
  if (std::memcmp(out.data(), plain.data(), n) != 0) return 1;
  return 0;
}
