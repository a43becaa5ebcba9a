// Build facts of the native core, exposed so that `bmcrypt --version` can say what it runs on.
#pragma once
#include <string>

namespace bmcrypt {
// Crypto++ version the core was compiled against, e.g. "8.7.0".
std::string cryptopp_version();
}  // namespace bmcrypt
