// The process-wide key ring from Python (shared with the C callbacks handed to the runtime).
#include <string>

#include "bindings.h"
#include "contract.h"
#include "keyfile.h"
#include "keyring.h"
#include "parallel.h"

namespace bmcrypt::python {

void register_keys(py::module_& m) {
  m.def("register_key", [](const py::buffer& key) {
        const InBuffer k(key);
        if (k.size() != kKeySize) throw py::value_error("a key is 32 bytes");
        global_keyring().add_key(k.data());
      }, py::arg("key"), "Registers a raw 32-byte user key (key source 1)");
  m.def("register_key_file", [](const py::object& path) {
        const std::string p = fs_path(path);
        py::gil_scoped_release release;
        global_keyring().add_key_file(p);
      }, py::arg("path"), "Registers the key of a key file or an identity file (refused if group/other may access it)");
  m.def("register_identity", [](const py::buffer& secret) {
        const InBuffer k(secret);
        if (k.size() != kKeySize) throw py::value_error("an X25519 identity is 32 bytes");
        global_keyring().add_identity(k.data());
      }, py::arg("secret"), "Registers an X25519 identity (recipient type 3) by its 32-byte secret");
  m.def("register_identity_file", [](const py::object& path) {
        const std::string p = fs_path(path);
        py::gil_scoped_release release;
        global_keyring().add_key_file(p);
      }, py::arg("path"), "Registers an identity file (or a key file: the file says which)");
  m.def("register_passphrase", [](std::string passphrase) {
        if (passphrase.empty()) throw py::value_error("the passphrase is empty");
        global_keyring().add_passphrase(passphrase);
        wipe(passphrase.data(), passphrase.size());  // this copy; the ring keeps its own
      }, py::arg("passphrase"), "Registers a passphrase (scrypt runs lazily, once per file salt)");
  m.def("clear_keys", [] {
        global_keyring().clear();
        reset_callback_file_keys();
      }, "Forgets and wipes all registered keys and cached data keys");
  m.def("set_threads", &set_max_threads, py::arg("n"),
        "Upper bound on threads for large envelopes (0: all cores)");
  m.def("max_threads", &max_threads, "Threads a large envelope is processed with");
}

}  // namespace bmcrypt::python
