#include "version.h"

#include <cryptopp/config_ver.h>

namespace bmcrypt {
std::string cryptopp_version() {
  const int v = CRYPTOPP_VERSION;  // e.g. 870
  return std::to_string(v / 100) + "." + std::to_string(v / 10 % 10) + "." + std::to_string(v % 10);
}
}  // namespace bmcrypt
