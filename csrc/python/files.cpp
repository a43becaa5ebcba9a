// Whole files from Python: verification, and loading into the vendor runtime.
#include <string>

#include "bindings.h"
#include "contract.h"
#include "mapped_file.h"
#include "verify.h"

namespace bmcrypt::python {

void register_files(py::module_& m) {
  py::class_<VerifyReport>(m, "VerifyReport", "What bmcrypt verified in a file")
      .def_readonly("typed", &VerifyReport::typed, "bmcrypt's typed envelopes (not model_tool -lib)")
      .def_readonly("clear_covered", &VerifyReport::clear_covered, "the clear-region digest was checked")
      .def_readonly("clear_bytes", &VerifyReport::clear_bytes)
      .def_readonly("weight_envelopes", &VerifyReport::weight_envelopes)
      .def_readonly("weight_bytes", &VerifyReport::weight_bytes)
      .def_readonly("nets", &VerifyReport::nets)
      .def_property_readonly("key_id", [](const VerifyReport& r) {
        return py::bytes(reinterpret_cast<const char*>(r.key_id.data()), r.key_id.size());
      });

  m.def("verify_file", [](const py::object& path) {
        const std::string p = fs_path(path);
        py::gil_scoped_release release;
        const MappedFile file(p);
        return verify_bmodel(file.bytes(), global_keyring());
      }, py::arg("path"), "Verifies a whole encrypted bmodel (FORMAT.md §6) with the registered keys");
  m.def("load_bmodel", [](uintptr_t p_bmrt, const py::object& path) {
        const std::string p = fs_path(path);
        py::gil_scoped_release release;
        load_bmodel_verified(reinterpret_cast<void*>(p_bmrt), p);
      }, py::arg("p_bmrt"), py::arg("path"),
      "Verifies the file, then loads it into the runtime handle with the decrypt callback");
}

}  // namespace bmcrypt::python
