// Running independent segments on all cores. Threads are started per call (no pool outlives a
// call): this code also runs inside a plugin that the vendor runtime may dlclose at any time.
#pragma once
#include <cstdint>
#include <functional>

namespace bmcrypt {

// Upper bound on worker threads; 0 means std::thread::hardware_concurrency().
void set_max_threads(unsigned n);
unsigned max_threads();

// Below this many items a call stays on the calling thread.
constexpr uint64_t kMinParallelItems = 4;

// Calls make_worker() once per thread, then worker(i) for every i in [0, n), each i exactly once
// unless a worker returns false: then the remaining items are skipped and the call returns
// false. An exception in a worker is rethrown on the calling thread after all threads joined.
using ItemWorker = std::function<bool(uint64_t)>;
bool for_each_item(uint64_t n, const std::function<ItemWorker()>& make_worker);

}  // namespace bmcrypt
