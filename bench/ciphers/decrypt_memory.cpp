// Evidence for issue 17's two memory goals, through the plugin's own C API (libbmcrypt.so, the
// path the vendor runtime calls): bmcrypt_decrypt of one large envelope, then free() of what it
// returned, exactly as the runtime does with every coeff. Measured here, in one process:
//
//   fresh         the output buffer is new memory, as the runtime gets it (the shipped code)
//   fresh_no_thp  the same with transparent huge pages disabled for this process
//                 (prctl PR_SET_THP_DISABLE): what the code did before it advised huge pages
//   faulted       the same call into memory that is already faulted in: glibc is told to serve
//                 the buffer from its heap and to keep the heap after free() (mallopt), so every
//                 call reuses the pages of the previous one; all cores
//   one_thread    the same as faulted on one thread (bmcrypt_set_threads(1))
//   memcpy        the memory-bandwidth ceiling: a memcpy of the same size between faulted
//                 buffers, on all cores (and one), 1 MiB pieces shared out like the segments
//
// Rates are plaintext GB/s (1e9 bytes) by wall-clock time, best of `rounds`; the decrypt rates
// include the free() (the runtime pays for the unmapping too). `faults` are the minor page
// faults of one call, the proof that "fresh" and "faulted" are what they say. One JSON line.
//
//   g++ -O2 decrypt_memory.cpp -I<bmcrypt/include> -L<bmcrypt/lib> -lbmcrypt -pthread
//   ./a.out [MiB=1024] [rounds=2] [threads for the fresh cases=0 (all)]
#include <malloc.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bmcrypt.h"

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "decrypt_memory: %s: %s\n", what, bmcrypt_last_error());
  std::exit(1);
}

struct Call {
  double seconds = 0, free_seconds = 0;
  long faults = 0;
};

// One bmcrypt_decrypt + free(), as the runtime calls it; the plaintext is checked on request.
Call decrypt_once(const uint8_t* env, uint64_t env_len, const std::vector<uint8_t>* expect) {
  Call c;
  const long f0 = minor_faults();
  const double t0 = now();
  uint64_t n = 0;
  uint8_t* out = bmcrypt_decrypt(env, env_len, &n);
  const double t1 = now();
  if (!out) fail("bmcrypt_decrypt");
  if (expect && (n != expect->size() || std::memcmp(out, expect->data(), n) != 0)) {
    std::fprintf(stderr, "decrypt_memory: the plaintext is wrong\n");
    std::exit(1);
  }
  const double t2 = now();
  std::free(out);
  c.free_seconds = now() - t2;
  c.seconds = (t1 - t0) + c.free_seconds;
  c.faults = minor_faults() - f0;
  return c;
}

struct Best {
  double gbps = 0, free_ms = 0;
  long faults = 0;
  void add(const Call& c, size_t bytes) {
    const double rate = double(bytes) / c.seconds / 1e9;
    if (rate > gbps) {
      gbps = rate;
      free_ms = c.free_seconds * 1e3;
      faults = c.faults;
    }
  }
};

// glibc serves the next large malloc from its heap and keeps the heap after free(), or goes
// back to its defaults (large blocks mmap'ed, returned to the kernel by free()).
void reuse_heap(bool on) {
  if (on) {
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
  } else {
    mallopt(M_TRIM_THRESHOLD, 128 << 10);
    malloc_trim(0);
    mallopt(M_MMAP_MAX, 65536);
  }
}

// GB/s of piece(at, len) over [0, n) on `threads` threads, 1 MiB pieces handed out in order
// (as the decrypt hands out its segments).
template <class Piece>
double parallel_rate(size_t n, unsigned threads, Piece&& piece) {
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t at; (at = next.fetch_add(1 << 20)) < n;) piece(at, std::min<size_t>(1 << 20, n - at));
  };
  const double t0 = now();
  std::vector<std::thread> helpers;
  for (unsigned t = 1; t < threads; ++t) helpers.emplace_back(work);
  work();
  for (auto& h : helpers) h.join();
  return double(n) / (now() - t0) / 1e9;
}

double copy_rate(uint8_t* dst, const uint8_t* src, size_t n, unsigned threads, int rounds) {
  double best = 0;
  for (int r = 0; r < rounds; ++r)
    best = std::max(best, parallel_rate(n, threads, [&](size_t at, size_t len) {
      std::memcpy(dst + at, src + at, len);
    }));
  return best;
}

// What the kernel's zeroing of fresh pages costs, whatever writes them: memset on all cores of
// a fresh malloc'ed block advised as the library advises its output (huge pages), then of the
// same block again, now faulted in. Best of `rounds` blocks.
struct FillRates {
  double fresh = 0, faulted = 0;
};
FillRates fill_rates(size_t n, unsigned threads, int rounds) {
  FillRates best;
  for (int r = 0; r < rounds; ++r) {
    uint8_t* p = static_cast<uint8_t*>(std::malloc(n));
    if (!p) fail("malloc");
    const uintptr_t huge = uintptr_t(2) << 20;
    const uintptr_t a = (uintptr_t(p) + huge - 1) & ~(huge - 1), b = (uintptr_t(p) + n) & ~(huge - 1);
    if (b > a) madvise(reinterpret_cast<void*>(a), b - a, MADV_HUGEPAGE);
    auto fill = [&](size_t at, size_t len) { std::memset(p + at, int(r + 1), len); };
    best.fresh = std::max(best.fresh, parallel_rate(n, threads, fill));
    best.faulted = std::max(best.faulted, parallel_rate(n, threads, fill));
    std::free(p);
  }
  return best;
}

std::string thp_mode() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  if (!std::getline(f, line)) return "unavailable";
  const size_t a = line.find('['), b = line.find(']');
  return a == std::string::npos || b == std::string::npos ? line : line.substr(a + 1, b - a - 1);
}

}  // namespace

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1024;
  const int rounds = argc > 2 ? std::max(1, std::atoi(argv[2])) : 2;
  const unsigned fresh_threads = argc > 3 ? unsigned(std::atoi(argv[3])) : 0;
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const size_t n = mib << 20;

  uint8_t key[32];
  for (int i = 0; i < 32; ++i) key[i] = uint8_t(i * 37 + 11);
  if (!bmcrypt_register_key(key)) fail("bmcrypt_register_key");
  std::vector<uint8_t> plain(n);
  uint64_t x = 0x9e3779b97f4a7c15;  // xorshift: incompressible enough, and quick
  for (size_t i = 0; i + 8 <= n; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::memcpy(plain.data() + i, &x, 8);
  }
  uint64_t env_len = 0;
  uint8_t* env = bmcrypt_encrypt(plain.data(), n, &env_len);
  if (!env) fail("bmcrypt_encrypt");

  Best fresh, no_thp, faulted, one;
  bmcrypt_set_threads(fresh_threads);
  // One untimed call of each kind first. In a VM that reports free memory to its host
  // (virtio-balloon free page reporting, as on the machine this was written on) the first
  // touch of such memory costs a host fault as well, ~3 s per GiB there, with 4 KiB pages and
  // huge pages alike: that cost belongs to the VM, not to the guest kernel the goal is about.
  // Warm, both kinds get memory the host backs, as any call after the first in a load does.
  for (int thp_off = 0; thp_off < 2; ++thp_off) {
    prctl(PR_SET_THP_DISABLE, thp_off, 0, 0, 0);
    decrypt_once(env, env_len, &plain);
  }
  for (int r = 0; r < rounds; ++r) {
    prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0);
    fresh.add(decrypt_once(env, env_len, nullptr), n);
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    no_thp.add(decrypt_once(env, env_len, nullptr), n);
  }
  prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0);
  const FillRates fills = fill_rates(n, cores, rounds);
  reuse_heap(true);
  bmcrypt_set_threads(0);
  decrypt_once(env, env_len, &plain);  // faults the heap in, once
  for (int r = 0; r < rounds; ++r) {
    bmcrypt_set_threads(0);
    faulted.add(decrypt_once(env, env_len, nullptr), n);
    bmcrypt_set_threads(1);
    one.add(decrypt_once(env, env_len, nullptr), n);
  }
  bmcrypt_set_threads(0);
  uint8_t* dst = static_cast<uint8_t*>(std::malloc(n));  // the same heap pages, faulted
  if (!dst) fail("malloc");
  std::memset(dst, 0, n);
  const double copy_all = copy_rate(dst, plain.data(), n, cores, rounds);
  const double copy_one = copy_rate(dst, plain.data(), n, 1, rounds);
  std::free(dst);
  reuse_heap(false);
  bmcrypt_free(env);

  std::printf(
      "{\"mib\": %zu, \"cores\": %u, \"fresh_threads\": %u, \"thp\": \"%s\", "
      "\"fresh_gbps\": %.3f, \"fresh_no_thp_gbps\": %.3f, \"faulted_gbps\": %.3f, "
      "\"one_thread_gbps\": %.3f, \"memcpy_gbps\": %.3f, \"memcpy_one_thread_gbps\": %.3f, "
      "\"memset_fresh_gbps\": %.3f, \"memset_faulted_gbps\": %.3f, "
      "\"fresh_faults\": %ld, \"fresh_no_thp_faults\": %ld, \"faulted_faults\": %ld, "
      "\"fresh_free_ms\": %.1f, \"fresh_no_thp_free_ms\": %.1f}\n",
      mib, cores, fresh_threads, thp_mode().c_str(), fresh.gbps, no_thp.gbps, faulted.gbps,
      one.gbps, copy_all, copy_one, fills.fresh, fills.faulted, fresh.faults, no_thp.faults, faulted.faults, fresh.free_ms,
      no_thp.free_ms);
  return 0;
}
