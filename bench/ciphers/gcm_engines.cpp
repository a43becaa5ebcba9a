// Evidence for the decrypt-throughput goal: the same segment loop as bmcrypt's envelopes (1 MiB
// segments, 48-byte AAD, one tag each) through Crypto++ (bmcrypt's engine) and through OpenSSL's
// EVP, on one thread, over a large buffer (what a load streams) and over one 1 MiB segment that
// stays in the CPU cache (what `openssl speed -bytes 1048576` measures). Prints one JSON line,
// GB/s per CPU-second, median of 5.
//
//   g++ -O2 gcm_engines.cpp -lcryptopp -lcrypto && ./a.out [MiB=256]
#include <cryptopp/aes.h>
#include <cryptopp/gcm.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

namespace {

constexpr size_t kSeg = 1 << 20, kTag = 16;
const uint8_t kKey[32] = {7};
const uint8_t kAad[48] = {1};

double cpu_now() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
}

void nonce_of(size_t i, bool last, uint8_t n[12]) {
  for (int b = 0; b < 12; ++b) n[b] = 0;
  for (int b = 0; b < 8; ++b) n[10 - b] = uint8_t(i >> (8 * b));
  n[11] = last;
}

struct Engines {
  CryptoPP::GCM<CryptoPP::AES, CryptoPP::GCM_2K_Tables>::Decryption cpp;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  Engines() {
    uint8_t n[12] = {};
    cpp.SetKeyWithIV(kKey, 32, n, 12);
    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, kKey, n);
  }
  ~Engines() { EVP_CIPHER_CTX_free(ctx); }

  bool open(bool openssl, const uint8_t* rec, uint8_t* out, size_t i, bool last) {
    uint8_t n[12];
    nonce_of(i, last, n);
    if (!openssl)
      return cpp.DecryptAndVerify(out, rec + kSeg, kTag, n, 12, kAad, 48, rec, kSeg);
    int len = 0;
    EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, n);
    EVP_DecryptUpdate(ctx, nullptr, &len, kAad, 48);
    EVP_DecryptUpdate(ctx, out, &len, rec, int(kSeg));
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, int(kTag), const_cast<uint8_t*>(rec + kSeg));
    return EVP_DecryptFinal_ex(ctx, out + len, &len) > 0;
  }
};

// Median GB/s per CPU-second of opening `segs` segments, `rounds` times over.
double rate(Engines& e, bool openssl, const std::vector<uint8_t>& env, std::vector<uint8_t>& out,
            size_t segs, size_t repeat) {
  std::vector<double> rates;
  for (int r = 0; r < 5; ++r) {
    const double c0 = cpu_now();
    for (size_t k = 0; k < repeat; ++k)
      for (size_t i = 0; i < segs; ++i)
        if (!e.open(openssl, env.data() + i * (kSeg + kTag), out.data() + i * kSeg, i, i + 1 == segs))
          std::abort();
    rates.push_back(double(segs * repeat * kSeg) / (cpu_now() - c0) / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  return rates[2];
}

}  // namespace

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? size_t(std::atoi(argv[1])) : 256;
  std::vector<uint8_t> plain(mib * kSeg), env(mib * (kSeg + kTag)), out(mib * kSeg);
  for (size_t i = 0; i < plain.size(); ++i) plain[i] = uint8_t(i * 131 + 7);
  CryptoPP::GCM<CryptoPP::AES, CryptoPP::GCM_2K_Tables>::Encryption enc;
  uint8_t n[12] = {};
  enc.SetKeyWithIV(kKey, 32, n, 12);
  for (size_t i = 0; i < mib; ++i) {  // the large envelope, and segment 0 alone (last = 1)
    nonce_of(i, i + 1 == mib, n);
    uint8_t* rec = env.data() + i * (kSeg + kTag);
    enc.EncryptAndAuthenticate(rec, rec + kSeg, kTag, n, 12, kAad, 48, plain.data() + i * kSeg, kSeg);
  }
  std::vector<uint8_t> hot(kSeg + kTag), hot_out(kSeg);
  nonce_of(0, true, n);
  enc.EncryptAndAuthenticate(hot.data(), hot.data() + kSeg, kTag, n, 12, kAad, 48, plain.data(), kSeg);
  Engines e;
  std::printf(
      "{\"cryptopp_large\": %.3f, \"openssl_large\": %.3f, \"cryptopp_hot\": %.3f, "
      "\"openssl_hot\": %.3f}\n",
      rate(e, false, env, out, mib, 1), rate(e, true, env, out, mib, 1),
      rate(e, false, hot, hot_out, 1, 256), rate(e, true, hot, hot_out, 1, 256));
}
