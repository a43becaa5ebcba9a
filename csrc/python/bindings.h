// Shared by the binding files of _native: one register_<area>(m) per file, and the helpers that
// turn Python buffers into byte views. Only type conversion lives here; the logic is in core/.
#pragma once
#include <pybind11/pybind11.h>

#include <string>

#include "bytes.h"

namespace bmcrypt::python {

namespace py = pybind11;

void register_errors(py::module_& m);
void register_envelope(py::module_& m);
void register_keys(py::module_& m);
void register_files(py::module_& m);
void register_licences(py::module_& m);

// A C-contiguous view of any buffer (bytes, bytearray, memoryview, numpy, mmap). The buffer stays
// exported (and so cannot be resized) for the lifetime of this object, also without the GIL.
// Destroy it with the GIL held.
class BufferView {
 public:
  BufferView(const py::buffer& b, bool writable) {
    const int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(b.ptr(), &view_, flags) != 0) throw py::error_already_set();
  }
  ~BufferView() { PyBuffer_Release(&view_); }
  BufferView(const BufferView&) = delete;
  BufferView& operator=(const BufferView&) = delete;

  ByteView view() const { return ByteView(data(), size()); }
  uint8_t* data() const { return static_cast<uint8_t*>(view_.buf); }
  size_t size() const { return size_t(view_.len); }

 private:
  Py_buffer view_;
};

struct InBuffer : BufferView {
  explicit InBuffer(const py::buffer& b) : BufferView(b, false) {}
};

struct OutBuffer : BufferView {
  explicit OutBuffer(const py::buffer& b) : BufferView(b, true) {}
};

// A filesystem path (str, bytes or os.PathLike) as the exact bytes the OS uses.
inline std::string fs_path(const py::object& path) {
  return py::module_::import("os").attr("fsencode")(path).cast<std::string>();
}

// A bytes object of n bytes whose content is written by fill(ptr) without the GIL (the object is
// not visible to anyone else yet), so the result is never copied.
template <class Fill>
py::bytes make_bytes(size_t n, Fill&& fill) {
  PyObject* obj = PyBytes_FromStringAndSize(nullptr, Py_ssize_t(n));
  if (!obj) throw py::error_already_set();
  py::bytes result = py::reinterpret_steal<py::bytes>(obj);
  {
    py::gil_scoped_release release;
    fill(reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(obj)));
  }
  return result;
}

}  // namespace bmcrypt::python
