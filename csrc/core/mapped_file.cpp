#include "mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "error.h"

namespace bmcrypt {
namespace {

[[noreturn]] void fail(const std::string& path, const char* what, int err) {
  throw Error(Errc::io, "cannot " + std::string(what) + " " + path + ": " + std::strerror(err));
}

// One message for every kind of non-regular file, from the mode alone.
void require_regular(const std::string& path, mode_t mode) {
  if (S_ISDIR(mode)) throw Error(Errc::io, path + " is a directory, not a bmodel file");
  if (!S_ISREG(mode)) throw Error(Errc::io, path + " is not a regular file");
}

}  // namespace

MappedFile::MappedFile(const std::string& path) {
  // A FIFO, socket or device is refused before any open that could block (a FIFO's open waits
  // for a writer) or have side effects; O_NONBLOCK covers the path being swapped in between,
  // and fstat then judges the file actually opened.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) fail(path, "open", errno);
  require_regular(path, st.st_mode);
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0) fail(path, "open", errno);
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    fail(path, "stat", err);
  }
  try {
    require_regular(path, st.st_mode);
  } catch (...) {
    ::close(fd_);
    throw;
  }
  size_ = size_t(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd_);
      fail(path, "map", err);
    }
    data_ = static_cast<const uint8_t*>(p);
  }
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  ::close(fd_);
}

}  // namespace bmcrypt
