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

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace bmcrypt
