// cpu_features: what Crypto++ detects on the CPU it runs on. Linked with the same static
// libcrypto++ that scripts/make-sdk.sh puts inside libbmcrypt.so; tests/test_sdk.py runs the
// aarch64 build under `qemu-aarch64 -cpu max` to show that the ARMv8 AES and PMULL paths are
// compiled in and chosen at run time.
#include <cryptopp/config.h>
#include <cryptopp/cpu.h>

#include <cstdio>

int main() {
#if defined(__aarch64__)
  std::printf("arch aarch64\nHasAES %d\nHasPMULL %d\nHasSHA2 %d\n", int(CryptoPP::HasAES()),
              int(CryptoPP::HasPMULL()), int(CryptoPP::HasSHA2()));
#elif defined(__x86_64__)
  std::printf("arch x86_64\nHasAES %d\nHasPMULL %d\nHasSHA2 %d\n", int(CryptoPP::HasAESNI()),
              int(CryptoPP::HasCLMUL()), int(CryptoPP::HasSHA()));
#endif
  return 0;
}
