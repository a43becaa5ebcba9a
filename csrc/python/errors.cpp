// The one place where native errors become Python exceptions: the classes of bmcrypt/errors.py.
#include <pybind11/pybind11.h>

#include <cryptopp/cryptlib.h>

#include "bindings.h"
#include "error.h"

namespace bmcrypt::python {
namespace {

const char* python_class(Errc code) {
  switch (code) {
    case Errc::not_a_bmodel: return "NotABmodel";
    case Errc::truncated: return "Truncated";
    case Errc::corrupt: return "Corrupt";
    case Errc::unsupported_version: return "UnsupportedVersion";
    case Errc::wrong_key: return "WrongKey";
    case Errc::tampered: return "Tampered";
    case Errc::no_key: return "NoKey";
    case Errc::key_file: return "KeyFileError";
    case Errc::not_encrypted: return "NotEncrypted";
    case Errc::foreign_encrypted: return "ForeignEncrypted";
    case Errc::io: return "InputFileError";
    case Errc::runtime: return "VendorRuntimeError";
    case Errc::licence_missing: return "NoLicence";
    case Errc::licence_corrupt: return "CorruptLicence";
    case Errc::licence_bad_signature: return "BadLicenceSignature";
    case Errc::licence_other_file: return "LicenceForAnotherFile";
    case Errc::licence_expired: return "LicenceExpired";
    case Errc::licence_other_device: return "LicenceForAnotherDevice";
    default: return "BmcryptError";
  }
}

void raise(const Error& e) {
  if (e.code() == Errc::bad_argument) {
    PyErr_SetString(PyExc_ValueError, e.what());
    return;
  }
  try {
    py::object cls = py::module_::import("bmcrypt.errors").attr(python_class(e.code()));
    py::object instance = cls(e.what());
    PyErr_SetObject(cls.ptr(), instance.ptr());
  } catch (py::error_already_set&) {
    // bmcrypt.errors is not importable (a bare build tree): keep the message and the code name.
    PyErr_SetString(PyExc_RuntimeError, (std::string(errc_name(e.code())) + ": " + e.what()).c_str());
  }
}

}  // namespace

void register_errors(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      raise(e);
    } catch (const CryptoPP::Exception& e) {
      PyErr_SetString(PyExc_RuntimeError, (std::string("crypto library: ") + e.what()).c_str());
    }
  });
  m.def("error_name", [](int code) { return std::string(errc_name(Errc(code))); },
        "Stable name of a native error code (the C API's enum bmcrypt_status)");
}

}  // namespace bmcrypt::python
