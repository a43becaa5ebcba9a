// Envelopes from Python: seal with per-file keys, open with the key ring, parse headers.
#include <memory>
#include <optional>
#include <string>

#include <pybind11/stl.h>

#include "bindings.h"
#include "contract.h"
#include "envelope.h"
#include "error.h"
#include "keyring.h"

namespace bmcrypt::python {
namespace {

py::bytes to_bytes(const uint8_t* p, size_t n) { return py::bytes(reinterpret_cast<const char*>(p), n); }

std::array<uint8_t, kFileIdSize> file_id_from(const py::bytes& b) {
  const std::string s = b;
  if (s.size() != kFileIdSize) throw py::value_error("a file_id is 16 bytes");
  std::array<uint8_t, kFileIdSize> id;
  std::copy(s.begin(), s.end(), id.begin());
  return id;
}

Kind kind_from(int kind) {
  if (kind < 0 || kind > int(Kind::weights)) throw py::value_error("kind must be 0..3");
  return Kind(kind);
}

std::shared_ptr<FileKeys> create_file_keys(std::optional<py::bytes> key,
                                           std::optional<std::string> passphrase) {
  if (key && passphrase) throw py::value_error("give a key or a passphrase, not both");
  std::optional<std::string> k;
  if (key) {
    k = std::string(*key);
    if (k->size() != kKeySize) throw py::value_error("a key is 32 bytes");
  }
  if (passphrase && passphrase->empty()) throw py::value_error("the passphrase is empty");
  py::gil_scoped_release release;  // scrypt
  UserKey user = k ? raw_user_key(reinterpret_cast<const uint8_t*>(k->data()))
                   : passphrase ? new_passphrase_key(*passphrase)
                                : global_keyring().writer_key();
  wipe(k ? k->data() : nullptr, k ? k->size() : 0);
  return std::make_shared<FileKeys>(new_file_keys(user));
}

std::shared_ptr<FileKeys> file_keys_from_parts(const py::bytes& file_id, const py::bytes& key_block,
                                               const py::bytes& dk) {
  auto keys = std::make_shared<FileKeys>();
  keys->file_id = file_id_from(file_id);
  std::string block = key_block, data_key = dk;
  if (block.size() != KeyBlock::kSize && !block.empty())
    throw py::value_error("a key block is 104 bytes (empty for a version 2 file)");
  if (data_key.size() != kKeySize) throw py::value_error("a data key is 32 bytes");
  if (block.empty()) {  // version 2: no key block, every envelope carries dk_check
    keys->version = 2;
  } else {
    keys->key_block = KeyBlock(reinterpret_cast<const uint8_t*>(block.data()));
  }
  keys->dk.Assign(reinterpret_cast<const uint8_t*>(data_key.data()), kKeySize);
  keys->dk_check = dk_check(keys->dk.data(), keys->file_id);
  wipe(data_key.data(), data_key.size());
  return keys;
}

py::bytes seal(const FileKeys& keys, const py::buffer& data, int kind, unsigned seg_log2) {
  const InBuffer in(data);
  const Kind k = kind_from(kind);
  return make_bytes(size_t(sealed_size(keys, k, in.size(), seg_log2)),
                    [&](uint8_t* out) { seal_envelope(keys, k, in.view(), out, seg_log2); });
}

size_t seal_into(const FileKeys& keys, const py::buffer& data, const py::buffer& out, int kind,
                 unsigned seg_log2) {
  const InBuffer in(data);
  const OutBuffer o(out);
  const Kind k = kind_from(kind);
  const uint64_t n = sealed_size(keys, k, in.size(), seg_log2);
  if (o.size() < n) throw py::value_error("the output buffer is too small: " + std::to_string(n) + " bytes needed");
  py::gil_scoped_release release;
  seal_envelope(keys, k, in.view(), o.data(), seg_log2);
  return size_t(n);
}

// A run of segments of one envelope (streaming): fn(public header, first, in, out) -> bytes out.
template <class Run>
size_t segments(const FileKeys& keys, const py::buffer& header, uint64_t first,
                const py::buffer& data, const py::buffer& out, Run&& run) {
  const InBuffer h(header), in(data);
  const OutBuffer o(out);
  py::gil_scoped_release release;
  return run(keys, h.view(), first, in.view(), o.data(), o.size());
}

// Whether an envelope is of the file of keys: its file_id, and its key block (version 1) or
// dk_check (version 2).
bool of_file(const EnvelopeHeader& h, const FileKeys& keys) {
  if (h.file_id != keys.file_id || h.version != keys.version) return false;
  return h.version == kFormatVersion2 ? h.dk_check == keys.dk_check : h.key_block == keys.key_block;
}

// Decrypts with dk, or with the key ring when dk is null.
py::bytes open_with(const py::buffer& envelope, const FileKeys* keys) {
  const InBuffer in(envelope);
  std::optional<EnvelopeHeader> h;
  {
    py::gil_scoped_release release;
    h = parse_envelope(in.view());
  }
  return make_bytes(size_t(h->plaintext_len), [&](uint8_t* out) {
    if (keys && !of_file(*h, *keys)) throw Error(Errc::wrong_key, "the envelope belongs to another file");
    const SecretBytes dk = keys ? keys->dk : global_keyring().data_key(*h, in.view());
    open_envelope(*h, in.view(), dk, out);
  });
}

// Decrypts into out with keys, or with the key ring when keys is null.
size_t open_into(const py::buffer& envelope, const py::buffer& out, const FileKeys* keys) {
  const InBuffer in(envelope);
  const OutBuffer o(out);
  py::gil_scoped_release release;
  const EnvelopeHeader h = parse_envelope(in.view());
  if (o.size() < h.plaintext_len)
    throw Error(Errc::bad_argument, "the output buffer is too small: " +
                                        std::to_string(h.plaintext_len) + " bytes needed");
  if (keys && !of_file(h, *keys)) throw Error(Errc::wrong_key, "the envelope belongs to another file");
  open_envelope(h, in.view(), keys ? keys->dk : global_keyring().data_key(h, in.view()), o.data());
  return size_t(h.plaintext_len);
}

}  // namespace

void register_envelope(py::module_& m) {
  m.attr("DEFAULT_SEG_LOG2") = kDefaultSegLog2;

  py::class_<EnvelopeHeader>(m, "EnvelopeHeader", "The checked 152-byte header of an envelope")
      .def_property_readonly("kind", [](const EnvelopeHeader& h) { return int(h.kind); })
      .def_readonly("seg_log2", &EnvelopeHeader::seg_log2)
      .def_readonly("plaintext_len", &EnvelopeHeader::plaintext_len)
      .def_property_readonly("segment_count", &EnvelopeHeader::segment_count)
      .def_property_readonly("file_id", [](const EnvelopeHeader& h) { return to_bytes(h.file_id.data(), kFileIdSize); })
      .def_property_readonly("region_salt", [](const EnvelopeHeader& h) { return to_bytes(h.region_salt.data(), kFileIdSize); })
      .def_property_readonly("key_block", [](const EnvelopeHeader& h) { return to_bytes(h.key_block.data(), KeyBlock::kSize); })
      .def_property_readonly("key_id", [](const EnvelopeHeader& h) { return to_bytes(h.key_block.key_id().data(), kKeyIdSize); })
      .def_readonly("version", &EnvelopeHeader::version)
      .def_property_readonly("dk_check", [](const EnvelopeHeader& h) { return to_bytes(h.dk_check.data(), h.dk_check.size()); })
      .def_readonly("policy", &EnvelopeHeader::policy)
      .def_property_readonly("licence_key", [](const EnvelopeHeader& h) { return to_bytes(h.licence_key.data(), h.licence_key.size()); })
      .def_property_readonly("key_area", [](const EnvelopeHeader& h) { return to_bytes(h.key_area.data(), h.key_area.size()); });

  py::class_<FileKeys, std::shared_ptr<FileKeys>>(m, "FileKeys",
      "The secrets one file's envelopes share: file_id, data key, key block")
      .def_static("create", &create_file_keys, py::arg("key") = py::none(), py::arg("passphrase") = py::none(),
                  "A new file: random file_id and data key, wrapped under `key` (32 bytes), a "
                  "`passphrase` (fresh scrypt salt), or else the first registered key")
      .def_static("from_parts", &file_keys_from_parts, py::arg("file_id"), py::arg("key_block"), py::arg("dk"),
                  "FileKeys from an existing file's file_id, key block and unwrapped data key (an "
                  "empty key block: a version 2 file, whose envelopes carry the data key's dk_check)")
      .def_property_readonly("file_id", [](const FileKeys& k) { return to_bytes(k.file_id.data(), kFileIdSize); })
      .def_property_readonly("key_block", [](const FileKeys& k) { return to_bytes(k.key_block.data(), KeyBlock::kSize); })
      .def_property_readonly("key_id", [](const FileKeys& k) { return to_bytes(k.key_block.key_id().data(), kKeyIdSize); })
      .def("seal", &seal, py::arg("data"), py::arg("kind") = 0, py::arg("seg_log2") = kDefaultSegLog2,
           "The envelope of `data` (bytes)")
      .def("seal_into", &seal_into, py::arg("data"), py::arg("out"), py::arg("kind") = 0,
           py::arg("seg_log2") = kDefaultSegLog2, "Writes the envelope into `out`; returns its length")
      .def("open", [](const FileKeys& k, const py::buffer& e) { return open_with(e, &k); }, py::arg("envelope"),
           "The plaintext of an envelope of this file (no key ring involved)")
      .def("seal_segments",
           [](const FileKeys& k, const py::buffer& h, uint64_t first, const py::buffer& d, const py::buffer& o) {
             return segments(k, h, first, d, o, seal_segments);
           }, py::arg("public_header"), py::arg("first"), py::arg("data"), py::arg("out"),
           "Seals a run of segments of the envelope with this public header (48 bytes, version 2: "
           "104) into `out`; "
           "returns the bytes written")
      .def("open_segments",
           [](const FileKeys& k, const py::buffer& h, uint64_t first, const py::buffer& r, const py::buffer& o) {
             return segments(k, h, first, r, o, open_segments);
           }, py::arg("public_header"), py::arg("first"), py::arg("records"), py::arg("out"),
           "Opens a run of segment records of the envelope with this public header into `out`; "
           "returns the plaintext length (Tampered, with `out` wiped, if one fails)")
      .def("open_into", [](const FileKeys& k, const py::buffer& e, const py::buffer& o) { return open_into(e, o, &k); },
           py::arg("envelope"), py::arg("out"),
           "Decrypts an envelope of this file into the writable buffer `out`; returns the length")
      .def("__repr__", [](const FileKeys& k) {
        return "FileKeys(key_id=" + py::bytes(to_bytes(k.key_block.key_id().data(), kKeyIdSize)).attr("hex")().cast<std::string>() + ")";
      });

  m.def("envelope_size", &envelope_size, py::arg("plaintext_len"), py::arg("seg_log2") = kDefaultSegLog2,
        "Exact length of the envelope of a plaintext of this length");
  m.def("parse_header", [](const py::buffer& b) { const InBuffer in(b); return parse_envelope(in.view()); },
        py::arg("envelope"), "The header of a whole envelope, checked against every limit (no key needed)");
  m.def("open", [](const py::buffer& e) { return open_with(e, nullptr); }, py::arg("envelope"),
        "The plaintext of an envelope, with the registered keys (kind 2: including the manifest)");
  m.def("open_into", [](const py::buffer& e, const py::buffer& o) { return open_into(e, o, nullptr); },
        py::arg("envelope"), py::arg("out"),
        "Decrypts into the writable buffer `out`; returns the plaintext length");
  m.def("decrypt_callback_address", [] { return reinterpret_cast<uintptr_t>(&callback_decrypt); },
        "Address of the C decrypt callback (vendor decrypt_func) for bmrt_load_bmodel_with_decrypt");
  m.def("encrypt_callback_address", [] { return reinterpret_cast<uintptr_t>(&callback_encrypt); },
        "Address of the C encrypt callback (model_tool's -lib contract)");
}

}  // namespace bmcrypt::python
