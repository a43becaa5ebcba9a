// A minimal test harness for the native tests: CHECK records a failure and goes on; main()
// returns check_summary(), non-zero when anything failed.
#pragma once
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace check {

inline int& failures() {
  static int n = 0;
  return n;
}
inline int& checks() {
  static int n = 0;
  return n;
}

inline void record(bool ok, const char* expr, const char* file, int line, const std::string& note) {
  ++checks();
  if (ok) return;
  ++failures();
  std::fprintf(stderr, "%s:%d: CHECK failed: %s%s%s\n", file, line, expr, note.empty() ? "" : " -- ",
               note.c_str());
}

inline int summary(const char* name) {
  std::printf("%s: %d checks, %d failed\n", name, checks(), failures());
  return failures() ? 1 : 0;
}

inline std::vector<uint8_t> from_hex(const std::string& hex) {
  if (hex.size() % 2) throw std::runtime_error("odd hex length");
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = uint8_t(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
  return out;
}

inline std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

inline void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

}  // namespace check

#define CHECK(expr) ::check::record(bool(expr), #expr, __FILE__, __LINE__, "")
#define CHECK_MSG(expr, note) ::check::record(bool(expr), #expr, __FILE__, __LINE__, (note))
