// A whole file mapped read-only, so that verifying a multi-GiB model copies nothing.
#pragma once
#include <string>

#include "bytes.h"

namespace bmcrypt {

class MappedFile {
 public:
  // Throws Error(io) when the path cannot be opened, is not a regular file, or cannot be mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  ByteView bytes() const { return ByteView(data_, size_); }
  // A path naming this very inode while the object lives ("/proc/self/fd/N"), so that whoever
  // opens it reads what was mapped even if the original path is renamed over meanwhile.
  std::string inode_path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_ = -1;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace bmcrypt
