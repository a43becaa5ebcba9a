// The process-wide licence set from Python (shared with the C callbacks handed to the runtime).
#include <optional>
#include <string>

#include "bindings.h"
#include "licence.h"

namespace bmcrypt::python {

void register_licences(py::module_& m) {
  install_licence_check();  // the key ring checks licences at E1 (licence.h)
  m.def("register_licence", [](const py::buffer& licence, const std::string& source) {
        const InBuffer b(licence);
        global_licences().add(parse_licence(source, b.view()));
      }, py::arg("licence"), py::arg("source"),
      "Registers a licence's bytes (CorruptLicence if malformed); `source` names it in messages");
  m.def("set_device_sn", [](const py::object& sn) {
        global_licences().set_device_sn(
            sn.is_none() ? std::nullopt
                         : std::optional<std::string>(sn.cast<py::bytes>().cast<std::string>()));
      }, py::arg("sn"), "The device's serial number for device-bound licences (None: unknown)");
  m.def("require_licence", [](const py::buffer& file_id, const py::buffer& licence_key,
                              uint64_t now) {
        const InBuffer id(file_id), key(licence_key);
        if (id.size() != 16 || key.size() != kLicenceKeySize)
          throw py::value_error("a file id is 16 bytes, a licence key 32");
        global_licences().require(id.data(), key.data(), now);
      }, py::arg("file_id"), py::arg("licence_key"), py::arg("now"),
      "The native verdict of FORMAT.md §8.5 on the registered licences at Unix time `now` "
      "(returns, or raises the licence error): what the C reader checks at E1");
  m.def("clear_licences", [] { global_licences().clear(false); },
        "Forgets every registered licence and the serial number; BMCRYPT_LICENSE_FILE is not "
        "read again (the package passes licences explicitly)");
}

}  // namespace bmcrypt::python
