// Evidence for encrypt's CPU floor (issue 17): can two SHA-256 passes over a model cost less than
// two passes one after the other? `encrypt -o` hashes every weight against its check_code and the
// whole original for the exact round trip: two independent streams. On one core this times
//   - OpenSSL's SHA-256 over stream A, then over stream B (what `openssl speed` and hashlib do);
//   - the same two streams interleaved, round by round, through the CPU's SHA extensions (two
//     lanes: each SHA-NI round instruction of one stream waits less for the one before it).
// Both compute the same states (checked against OpenSSL's before timing). Prints one JSON line:
// bytes hashed per CPU-second, median of 5 runs. x86-64 with SHA-NI only (prints an error
// otherwise). A measurement, not bmcrypt's hashing: the product keeps OpenSSL's.
//
//   cc -O2 sha_lanes.c -lcrypto && ./a.out [MiB=128]
#include <cpuid.h>
#include <immintrin.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHA_NI __attribute__((target("sha,sse4.1,ssse3")))

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

// SHA-NI keeps the state as two registers, ABEF and CDGH; the C state is A..H.
SHA_NI static void load_state(const uint32_t s[8], __m128i* abef, __m128i* cdgh) {
  __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i*)s), 0xB1);
  __m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i*)(s + 4)), 0x1B);
  *abef = _mm_alignr_epi8(abcd, efgh, 8);
  *cdgh = _mm_blend_epi16(efgh, abcd, 0xF0);
}

SHA_NI static void store_state(uint32_t s[8], __m128i abef, __m128i cdgh) {
  __m128i t = _mm_shuffle_epi32(abef, 0x1B);
  __m128i u = _mm_shuffle_epi32(cdgh, 0xB1);
  _mm_storeu_si128((__m128i*)s, _mm_blend_epi16(t, u, 0xF0));
  _mm_storeu_si128((__m128i*)(s + 4), _mm_alignr_epi8(u, t, 8));
}

// `blocks` 64-byte blocks of each of two messages into two states, the rounds interleaved.
SHA_NI static void sha256_two_lanes(uint32_t* state_a, const uint8_t* a, uint32_t* state_b,
                                    const uint8_t* b, size_t blocks) {
  const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i s0[2], s1[2];
  const uint8_t* p[2] = {a, b};
  load_state(state_a, &s0[0], &s1[0]);
  load_state(state_b, &s0[1], &s1[1]);
  while (blocks--) {
    __m128i w[2][4], keep0[2] = {s0[0], s0[1]}, keep1[2] = {s1[0], s1[1]};
    _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) {  // 4 rounds each
      const __m128i k = _mm_loadu_si128((const __m128i*)(K + 4 * i));
      _Pragma("GCC unroll 2") for (int l = 0; l < 2; l++) {
        __m128i x;
        if (i < 4) {
          x = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)(p[l] + 16 * i)), bswap);
        } else {  // w[i&3] holds msg1(W[i-4], W[i-3]) here
          x = _mm_add_epi32(w[l][i & 3], _mm_alignr_epi8(w[l][(i - 1) & 3], w[l][(i - 2) & 3], 4));
          x = _mm_sha256msg2_epu32(x, w[l][(i - 1) & 3]);
        }
        const __m128i m = _mm_add_epi32(x, k);
        s1[l] = _mm_sha256rnds2_epu32(s1[l], s0[l], m);
        s0[l] = _mm_sha256rnds2_epu32(s0[l], s1[l], _mm_shuffle_epi32(m, 0x0E));
        w[l][i & 3] = x;
        if (i >= 3 && i < 15) {
          w[l][(i + 1) & 3] = _mm_sha256msg1_epu32(w[l][(i + 1) & 3], w[l][(i + 2) & 3]);
        }
      }
    }
    for (int l = 0; l < 2; l++) {
      s0[l] = _mm_add_epi32(s0[l], keep0[l]);
      s1[l] = _mm_add_epi32(s1[l], keep1[l]);
      p[l] += 64;
    }
  }
  store_state(state_a, s0[0], s1[0]);
  store_state(state_b, s0[1], s1[1]);
}

static const uint32_t kInitial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_value(const void* x, const void* y) {
  double a = *(const double*)x, b = *(const double*)y;
  return (a > b) - (a < b);
}

static double median(double* v, int n) {
  qsort(v, (size_t)n, sizeof *v, by_value);
  return v[n / 2];
}

// The state OpenSSL reaches after whole blocks of `data` (SHA256_CTX.h, its chaining value).
static void openssl_state(const uint8_t* data, size_t n, uint32_t out[8]) {
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  SHA256_Update(&ctx, data, n);
  memcpy(out, ctx.h, 32);
}

int main(int argc, char** argv) {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || !(ebx & (1u << 29))) {
    fprintf(stderr, "sha_lanes: this CPU has no SHA extensions\n");
    return 2;
  }
  const size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 128;
  const size_t n = mib << 20;
  uint8_t* a = malloc(n);
  uint8_t* b = malloc(n);
  if (!a || !b) return 1;
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    a[i] = (uint8_t)x;
    b[i] = (uint8_t)(x >> 32);
  }
  uint32_t want_a[8], want_b[8], got_a[8], got_b[8];
  // Two different messages, one of them at an offset: the same states as OpenSSL's.
  openssl_state(a, n - 64, want_a);
  openssl_state(b + 64, n - 64, want_b);
  memcpy(got_a, kInitial, 32);
  memcpy(got_b, kInitial, 32);
  sha256_two_lanes(got_a, a, got_b, b + 64, (n - 64) / 64);
  if (memcmp(got_a, want_a, 32) || memcmp(got_b, want_b, 32)) {
    fprintf(stderr, "sha_lanes: the two-lane states differ from OpenSSL's\n");
    return 1;
  }
  double one_after_other[5], two_lanes[5];
  for (int r = 0; r < 5; r++) {
    double t0 = cpu_now();
    openssl_state(a, n, want_a);
    openssl_state(b, n, want_b);
    double t1 = cpu_now();
    memcpy(got_a, kInitial, 32);
    memcpy(got_b, kInitial, 32);
    sha256_two_lanes(got_a, a, got_b, b, n / 64);
    double t2 = cpu_now();
    if (memcmp(got_a, want_a, 32) || memcmp(got_b, want_b, 32)) return 1;
    one_after_other[r] = 2.0 * (double)n / (t1 - t0) / 1e9;
    two_lanes[r] = 2.0 * (double)n / (t2 - t1) / 1e9;
  }
  printf("{\"mib\": %zu, \"openssl_one_after_other_gbps\": %.3f, \"two_lanes_gbps\": %.3f}\n", mib,
         median(one_after_other, 5), median(two_lanes, 5));
  free(a);
  free(b);
  return 0;
}
