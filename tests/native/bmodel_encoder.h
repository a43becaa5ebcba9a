// Test-only: turns a plain bmodel into a bmcrypt file, so the C++ tests can verify and load whole
// files without the Python package. Typed: kinds 1/2/3 and a manifest (what `bmcrypt encrypt`
// writes); untyped: kind 0 everywhere, no manifest (what model_tool --encrypt -lib writes).
// Every coeff of every net is encrypted; the clear bytes of the original coeffs are zeroed and
// the envelopes appended to the binary region. Version 2 keys (keys.version == 2, typed only)
// give a version 2 file with a restore record (FORMAT.md §8.4).
#pragma once
#include <cstdint>
#include <vector>

#include "keyblock.h"

namespace testing {

std::vector<uint8_t> encrypt_bmodel(const std::vector<uint8_t>& plain, const bmcrypt::FileKeys& keys,
                                    bool typed = true);

}  // namespace testing
