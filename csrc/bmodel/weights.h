// Where a bmcrypt file's encrypted weights lie in its binary region, and that nothing else
// overlaps them (FORMAT.md §6.1): the rules bmcrypt/protect/plan.py's plan_open applies before
// the Python package opens a single envelope, in the same order, with the same errors.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "bmodel_generated.h"
#include "bytes.h"
#include "walk.h"

namespace bmcrypt {

// One kind-3 envelope, as the CoeffMems that use it describe it.
struct SealedRegion {
  uint64_t start = 0;         // the envelope's bytes in the binary region
  uint64_t size = 0;
  uint64_t decrypt_size = 0;  // its plaintext length, the same in every CoeffMem that uses it
  ByteView check_code;        // of the first CoeffMem that uses it (net order, stage order)
  std::string net;            // the first net that uses it, for messages
};

// The encrypted regions of a verified FlatBuffer, sorted by offset. `binaries` is every Binary
// of it (walk_flatbuffer). Throws Error(corrupt) for an encrypt_mode other than 0 or 1,
// encrypted ranges that overlap, one range with two decrypt_sizes, a range beyond region_size,
// or any other non-empty Binary that is not inside the clear bytes between the envelopes.
std::vector<SealedRegion> plan_sealed_regions(const bmodel::Model& model,
                                              const std::vector<BinaryRef>& binaries,
                                              uint64_t region_size);

}  // namespace bmcrypt
