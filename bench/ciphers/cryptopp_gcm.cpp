// The minimal cipher library a vendor-flow user would write: model_tool's -lib contract with one
// single-shot AES-256-GCM per call (Crypto++), out = nonce(12) || ciphertext || tag(16).
// The key is fixed (a baseline for speed, not a way to protect anything).
#include <cryptopp/aes.h>
#include <cryptopp/gcm.h>
#include <cryptopp/osrng.h>

#include <cstdint>
#include <cstdlib>

namespace {
const uint8_t kKey[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                          17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
constexpr size_t kNonce = 12, kTag = 16;
}  // namespace

extern "C" __attribute__((visibility("default")))
uint8_t* encrypt(const uint8_t* in, uint64_t in_len, uint64_t* out_len) {
  try {
    uint8_t* out = static_cast<uint8_t*>(std::malloc(in_len + kNonce + kTag));
    if (!out) return nullptr;
    CryptoPP::AutoSeededRandomPool rng;
    rng.GenerateBlock(out, kNonce);
    CryptoPP::GCM<CryptoPP::AES>::Encryption gcm;
    gcm.SetKeyWithIV(kKey, sizeof kKey, out, kNonce);
    gcm.EncryptAndAuthenticate(out + kNonce, out + kNonce + in_len, kTag, out, kNonce, nullptr, 0,
                               in, in_len);
    *out_len = in_len + kNonce + kTag;
    return out;
  } catch (...) {
    return nullptr;
  }
}

extern "C" __attribute__((visibility("default")))
uint8_t* decrypt(const uint8_t* in, uint64_t in_len, uint64_t* out_len) {
  try {
    if (in_len < kNonce + kTag) return nullptr;
    const uint64_t n = in_len - kNonce - kTag;
    uint8_t* out = static_cast<uint8_t*>(std::malloc(n ? n : 1));
    if (!out) return nullptr;
    CryptoPP::GCM<CryptoPP::AES>::Decryption gcm;
    gcm.SetKeyWithIV(kKey, sizeof kKey, in, kNonce);
    if (!gcm.DecryptAndVerify(out, in + kNonce + n, kTag, in, kNonce, nullptr, 0, in + kNonce, n)) {
      std::free(out);
      return nullptr;
    }
    *out_len = n;
    return out;
  } catch (...) {
    return nullptr;
  }
}
