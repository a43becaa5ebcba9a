// bmcrypt._native: the private extension. Only type conversion lives here; the logic is in core/.
#include <pybind11/pybind11.h>

#include "bindings.h"
#include "version.h"

namespace py = pybind11;

PYBIND11_MODULE(_native, m) {
  m.doc() = "bmcrypt native core (private; use the bmcrypt package)";
  m.def("cryptopp_version", &bmcrypt::cryptopp_version, "Crypto++ version the core was built with");
  m.def("version", [] { return std::string(BMCRYPT_VERSION); }, "Version of the native core");
  bmcrypt::python::register_errors(m);
  bmcrypt::python::register_envelope(m);
  bmcrypt::python::register_keys(m);
  bmcrypt::python::register_files(m);
  bmcrypt::python::register_licences(m);
}
