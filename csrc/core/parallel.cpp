#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace bmcrypt {
namespace {
std::atomic<unsigned> g_max_threads{0};
}

void set_max_threads(unsigned n) { g_max_threads.store(n); }

unsigned max_threads() {
  unsigned n = g_max_threads.load();
  if (n == 0) n = std::thread::hardware_concurrency();
  return std::max(1u, n);
}

bool for_each_item(uint64_t n, const std::function<ItemWorker()>& make_worker) {
  if (n == 0) return true;
  uint64_t threads = n < kMinParallelItems ? 1 : std::min<uint64_t>(max_threads(), n);

  std::atomic<uint64_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex error_mutex;
  std::exception_ptr error;

  auto run = [&] {
    try {
      ItemWorker worker = make_worker();
      while (!stop.load(std::memory_order_relaxed)) {
        const uint64_t i = next.fetch_add(1);
        if (i >= n) break;
        if (!worker(i)) stop.store(true);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      stop.store(true);
    }
  };

  std::vector<std::thread> helpers;
  try {
    helpers.reserve(size_t(threads - 1));
    for (uint64_t t = 1; t < threads; ++t) helpers.emplace_back(run);
  } catch (...) {
    // No more threads (or memory for them): the ones already started and this one do the work.
  }
  run();
  for (auto& h : helpers) h.join();
  if (error) std::rethrow_exception(error);
  return !stop.load();
}

}  // namespace bmcrypt
