#include "weights.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "error.h"

namespace bmcrypt {
namespace {

using Range = std::pair<uint64_t, uint64_t>;  // {start, size}

struct User {
  std::string net;
  const bmodel::CoeffMem* coeff;
};

[[noreturn]] void corrupt(const std::string& what) { throw Error(Errc::corrupt, what); }

// Every CoeffMem with a binary_coeff, in net order then stage order, grouped by range.
std::map<Range, std::vector<User>> encrypted_coeffs(const bmodel::Model& model,
                                                    std::vector<Range>& first_seen) {
  std::map<Range, std::vector<User>> users;
  for (const bmodel::Net* net : *model.net()) {
    if (!net->parameter()) continue;
    const std::string name = net->name()->str();
    for (const bmodel::NetParameter* stage : *net->parameter()) {
      const bmodel::CoeffMem* coeff = stage->coeff_mem();
      if (!coeff) continue;
      // As the plain reader: the runtime dereferences binary_coeff.
      if (!coeff->binary_coeff()) corrupt("net '" + name + "' has a coeff_mem without binary_coeff");
      if (coeff->encrypt_mode() == 1) {
        const Range r{coeff->binary_coeff()->start(), coeff->binary_coeff()->size()};
        if (r.second == 0) corrupt("the encrypted weights of net '" + name + "' are empty");
        auto& list = users[r];
        if (list.empty()) first_seen.push_back(r);
        list.push_back({name, coeff});
      } else if (coeff->encrypt_mode() != 0) {
        corrupt("net '" + name + "' has unknown encrypt_mode " + std::to_string(coeff->encrypt_mode()));
      }
    }
  }
  return users;
}

}  // namespace

std::vector<SealedRegion> plan_sealed_regions(const bmodel::Model& model,
                                              const std::vector<BinaryRef>& binaries,
                                              uint64_t region_size) {
  std::vector<Range> first_seen;
  const auto users = encrypted_coeffs(model, first_seen);
  std::vector<Range> ranges;
  for (const auto& [range, _] : users) ranges.push_back(range);  // std::map: sorted
  for (size_t i = 1; i < ranges.size(); ++i) {
    const Range& a = ranges[i - 1];
    if (a.second > ranges[i].first - a.first) corrupt("two weight regions overlap partially");
  }
  for (const Range& r : first_seen) {
    const auto& list = users.at(r);
    for (const User& u : list)
      if (u.coeff->decrypt_size() != list[0].coeff->decrypt_size())
        corrupt("weights of net '" + list[0].net + "' declare different sizes");
  }
  // The clear bytes: the region minus the envelopes, as plan.py's clear pieces.
  std::vector<Range> clear;  // {start, end}
  uint64_t old = 0;
  for (const Range& r : ranges) {
    if (r.first > region_size || r.second > region_size - r.first)
      corrupt("weights point outside the binary region");
    if (r.first > old) clear.push_back({old, r.first});
    old = r.first + r.second;
  }
  if (region_size > old) clear.push_back({old, region_size});

  const std::set<Range> sealed(ranges.begin(), ranges.end());
  for (const BinaryRef& b : binaries) {
    if (sealed.count({b.start, b.size})) continue;
    auto after = std::upper_bound(clear.begin(), clear.end(), b.start,
                                  [](uint64_t v, const Range& c) { return v < c.first; });
    const bool inside = after != clear.begin() && b.start <= std::prev(after)->second &&
                        b.size <= std::prev(after)->second - b.start;
    if (!inside && b.size != 0) corrupt("a region of the model overlaps its weights");
  }

  std::vector<SealedRegion> regions;
  for (const Range& r : ranges) {
    const User& first = users.at(r)[0];
    const auto* code = first.coeff->check_code();
    regions.push_back({r.first, r.second, first.coeff->decrypt_size(),
                       code ? ByteView(code->data(), code->size()) : ByteView(), first.net});
  }
  return regions;
}

}  // namespace bmcrypt
