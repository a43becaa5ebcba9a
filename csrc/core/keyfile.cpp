#include "keyfile.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <vector>

#include <cryptopp/sha.h>

#include "error.h"

namespace bmcrypt {
namespace {

constexpr size_t kMaxKeyFileSize = 4096;  // a key file is ~130 bytes
constexpr std::string_view kMagic = "bmcrypt-key-v1";
constexpr std::string_view kKeyPrefix = "key: ";
constexpr std::string_view kIdentityMagic = "BMCRYPT-X25519-1";
constexpr size_t kIdentityChecksumOff = 48, kIdentityChecksumSize = 24;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;  // lower-case only, as written
  return -1;
}

[[noreturn]] void refuse(const std::string& why) { throw Error(Errc::key_file, why); }

// "bmcrypt-key-v" followed by 1..4 digits: a key file of another format version.
bool other_version(std::string_view line) {
  constexpr std::string_view stem = "bmcrypt-key-v";
  if (line.substr(0, stem.size()) != stem) return false;
  const std::string_view digits = line.substr(stem.size());
  if (digits.empty() || digits.size() > 4) return false;
  for (char c : digits)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

SecretBytes parse_key_text(const std::string& where, const char* text, size_t size) {
  const std::string malformed = "key file " + where + " is malformed";
  for (size_t i = 0; i < size; ++i)
    if (static_cast<unsigned char>(text[i]) > 0x7f)
      refuse(where + " is not a bmcrypt key file (not ASCII text)");
  const std::string_view all(text, size);
  if (all.find('\r') != std::string_view::npos) refuse(malformed + " (it has CR LF line endings)");

  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos <= size;) {
    const size_t end = std::min(all.find('\n', pos), size);
    lines.push_back(all.substr(pos, end - pos));
    pos = end + 1;
  }
  if (!lines.empty() && lines.back().empty()) lines.pop_back();  // the final newline is optional

  const std::string_view first = lines.empty() ? std::string_view() : lines[0];
  if (first != kMagic) {
    if (other_version(first))
      refuse("key file " + where + " is in format " + std::string(first) +
             ", which this bmcrypt does not read");
    refuse(where + " is not a bmcrypt key file (its first line is not bmcrypt-key-v1)");
  }
  std::vector<std::string_view> body;
  for (size_t i = 1; i < lines.size(); ++i)
    if (lines[i].substr(0, 1) != "#") body.push_back(lines[i]);
  const std::string one_line = malformed +
      " (after the first line and # comments it must hold one line: `key: ` and 64 lower-case hex digits)";
  if (body.size() != 1 || body[0].size() != kKeyPrefix.size() + 2 * kKeySize ||
      body[0].substr(0, kKeyPrefix.size()) != kKeyPrefix)
    refuse(one_line);
  const std::string_view hex = body[0].substr(kKeyPrefix.size());
  SecretBytes key(kKeySize);
  for (size_t i = 0; i < kKeySize; ++i) {
    const int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) refuse(one_line);
    key[i] = uint8_t(hi << 4 | lo);
  }
  return key;
}

namespace {

// One message for every kind of non-regular file, from the mode alone.
void require_regular(const std::string& path, mode_t mode) {
  if (S_ISDIR(mode)) refuse(path + " is a directory, not a key file");
  if (!S_ISREG(mode)) refuse(path + " is not a regular file");
}

}  // namespace

bool is_identity_file(const uint8_t* bytes, size_t size) {
  return size == kIdentityFileSize &&
         std::memcmp(bytes, kIdentityMagic.data(), kIdentityMagic.size()) == 0;
}

SecretBytes parse_identity(const std::string& where, const uint8_t* bytes, size_t size) {
  if (!is_identity_file(bytes, size)) refuse(where + " is not a bmcrypt identity file");
  uint8_t digest[CryptoPP::SHA256::DIGESTSIZE];
  CryptoPP::SHA256().CalculateDigest(digest, bytes, kIdentityChecksumOff);
  const bool ok = equal_ct(digest, bytes + kIdentityChecksumOff, kIdentityChecksumSize);
  wipe(digest, sizeof digest);
  if (!ok) refuse("identity file " + where + " is damaged (its checksum does not match)");
  return SecretBytes(bytes + kIdentityMagic.size(), kKeySize);
}

namespace {

// The bytes of a small private file (a key or identity file), with every check of read_key_file.
SecretBytes read_private_file(const std::string& path) {
  // A FIFO, socket or device is refused before any open (a FIFO's open waits for a writer, a
  // socket's fails with ENXIO); O_NONBLOCK covers a swap in between, fstat judges what opened.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) refuse("key file " + path + " does not exist");
    refuse("cannot open key file " + path + ": " + std::strerror(errno));
  }
  require_regular(path, st.st_mode);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) refuse("key file " + path + " does not exist");
    refuse("cannot open key file " + path + ": " + std::strerror(errno));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::fstat(fd, &st) != 0) refuse("cannot open key file " + path + ": " + std::strerror(errno));
  require_regular(path, st.st_mode);
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", unsigned(st.st_mode & 07777));
    refuse("key file " + path + " is accessible by other users (mode " + mode + ")");
  }
  SecretBytes text(kMaxKeyFileSize + 1);
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) refuse("cannot read key file " + path + ": " + std::strerror(errno));
    if (n == 0) break;
    got += size_t(n);
  }
  if (got > kMaxKeyFileSize) refuse(path + " is too large to be a key file");
  text.resize(got);  // SecByteBlock wipes what it gives up
  return text;
}

}  // namespace

KeyMaterial read_key_material(const std::string& path) {
  const SecretBytes bytes = read_private_file(path);
  KeyMaterial m;
  if (is_identity_file(bytes.data(), bytes.size())) {
    m.type = KeyMaterial::Type::identity;
    m.secret = parse_identity(path, bytes.data(), bytes.size());
  } else {
    m.secret = parse_key_text(path, reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  return m;
}

SecretBytes read_key_file(const std::string& path) {
  const SecretBytes bytes = read_private_file(path);
  return parse_key_text(path, reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace bmcrypt
