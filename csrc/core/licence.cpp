#include "licence.h"

#include <cryptopp/xed25519.h>

#include <cstdlib>
#include <ctime>
#include <string_view>

#include "envelope.h"
#include "error.h"
#include "keyring.h"
#include "mapped_file.h"

namespace bmcrypt {
namespace {

constexpr uint8_t kMagic[4] = {'B', 'M', 'C', 'L'};
constexpr size_t kFixedSize = 64;
constexpr std::string_view kContext = "bmcrypt licence v1";
constexpr uint64_t kMaxNotAfter = (uint64_t(1) << 63) - 1;

[[noreturn]] void corrupt(const std::string& where, const std::string& why) {
  throw Error(Errc::licence_corrupt, where + " is not a valid licence (" + why + ")");
}

std::string hex(const uint8_t* p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

bool signature_valid(const Licence& lic) {
  const size_t signed_len = lic.raw.size() - kLicenceSigSize;
  std::vector<uint8_t> message(kContext.begin(), kContext.end());
  message.insert(message.end(), lic.raw.begin(), lic.raw.begin() + signed_len);
  try {
    CryptoPP::ed25519Verifier verifier(lic.signer.data());
    return verifier.VerifyMessage(message.data(), message.size(), lic.raw.data() + signed_len,
                                  kLicenceSigSize);
  } catch (const CryptoPP::Exception&) {
    return false;  // a public key that is no point on the curve
  }
}

std::string utc(uint64_t t) {
  const std::time_t tt = std::time_t(t);
  std::tm tm{};
  char buf[32] = "?";
  if (gmtime_r(&tt, &tm)) std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string serial_list(const Licence& lic) {
  std::string out;
  for (const auto& s : lic.serials) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// How far `lic` gets through §8.5's checks (1..4) and why it stops; 5 when it passes.
int judge(const Licence& lic, const uint8_t* file_id, const uint8_t* licence_key, uint64_t now,
          const std::optional<std::string>& sn, Error* why) {
  const std::string name = "licence " + lic.source;
  if (!std::equal(lic.signer.begin(), lic.signer.end(), licence_key)) {
    *why = Error(Errc::licence_bad_signature, name + " is signed by another key (ed25519 " +
                                                  hex(lic.signer.data(), 32) + ") than this "
                                                  "model requires (ed25519 " +
                                                  hex(licence_key, 32) + ")");
    return 1;
  }
  if (!signature_valid(lic)) {
    *why = Error(Errc::licence_bad_signature,
                 "the signature of " + name + " does not verify (the licence was altered)");
    return 1;
  }
  if (!std::equal(lic.file_id.begin(), lic.file_id.end(), file_id)) {
    *why = Error(Errc::licence_other_file, name + " is for file " + hex(lic.file_id.data(), 16) +
                                               ", this model is file " + hex(file_id, 16));
    return 2;
  }
  if (now > lic.not_after) {
    *why = Error(Errc::licence_expired, name + " expired at " + utc(lic.not_after));
    return 3;
  }
  if (!lic.serials.empty()) {
    bool listed = false;
    if (sn)
      for (const auto& s : lic.serials) listed = listed || s == *sn;
    if (!listed) {
      *why = Error(Errc::licence_other_device,
                   name + " is for the devices " + serial_list(lic) +
                       (sn ? ", not for this one (" + *sn + ")"
                           : ", and no device serial number is known here (the simulator has "
                             "none; a program loading through the vendor's decrypt_lib calls "
                             "bmcrypt_set_device_sn first)"));
      return 4;
    }
  }
  return 5;
}

}  // namespace

void install_licence_check() {
  KeyRing::set_licence_check([](const EnvelopeHeader& e1, const KeyRing&) {
    require_licence(e1.file_id.data(), e1.licence_key.data(), global_licences());
  });
}

Licence parse_licence(const std::string& where, ByteView b) {
  if (b.size < kFixedSize + kLicenceSigSize)
    corrupt(where, std::to_string(b.size) + " bytes; a licence has at least 128");
  if (b.size > kLicenceMaxSize)
    corrupt(where, std::to_string(b.size) + " bytes; a licence has at most " +
                       std::to_string(kLicenceMaxSize));
  const uint8_t* p = b.data;
  if (!std::equal(kMagic, kMagic + 4, p)) corrupt(where, "no BMCL magic");
  if (p[4] != 1)
    throw Error(Errc::licence_corrupt, where + " is a licence of version " +
                                           std::to_string(p[4]) + ", which this bmcrypt does "
                                           "not read");
  const size_t n_sn = p[5];
  if (p[6] || p[7]) corrupt(where, "reserved bytes are not zero");
  if (n_sn > kLicenceMaxSerials) corrupt(where, std::to_string(n_sn) + " serial numbers; at most 32");
  Licence lic;
  lic.source = where;
  std::copy(p + 8, p + 24, lic.file_id.begin());
  lic.not_after = load_le64(p + 24);
  if (lic.not_after > kMaxNotAfter) corrupt(where, "its expiry is out of range");
  std::copy(p + 32, p + 64, lic.signer.begin());
  size_t pos = kFixedSize;
  const size_t end = b.size - kLicenceSigSize;
  for (size_t i = 0; i < n_sn; ++i) {
    if (pos >= end) corrupt(where, "its serial numbers run into the signature");
    const size_t n = p[pos];
    if (n < 1 || n > kLicenceMaxSerialLen || pos + 1 + n > end)
      corrupt(where, "a serial number has a bad length");
    std::string sn(reinterpret_cast<const char*>(p + pos + 1), n);
    for (const auto& seen : lic.serials)
      if (seen == sn) corrupt(where, "a serial number is listed twice");
    lic.serials.push_back(std::move(sn));
    pos += 1 + n;
  }
  if (pos != end) corrupt(where, "bytes between the serial numbers and the signature");
  lic.raw.assign(p, p + b.size);
  return lic;
}

Licence read_licence_file(const std::string& path) {
  const MappedFile file(path);
  return parse_licence(path, file.bytes());
}

void LicenceSet::add(Licence licence) {
  std::lock_guard<std::mutex> lock(mu_);
  licences_.push_back(std::move(licence));
}

void LicenceSet::set_device_sn(std::optional<std::string> sn) {
  std::lock_guard<std::mutex> lock(mu_);
  device_sn_ = std::move(sn);
}

std::optional<std::string> LicenceSet::device_sn() const {
  std::lock_guard<std::mutex> lock(mu_);
  return device_sn_;
}

void LicenceSet::clear(bool read_environment_again) {
  std::lock_guard<std::mutex> lock(mu_);
  licences_.clear();
  device_sn_.reset();
  env_loaded_ = !read_environment_again;
}

bool LicenceSet::empty() const {
  std::lock_guard<std::mutex> lock(mu_);
  return licences_.empty();
}

void LicenceSet::require(const uint8_t file_id[16], const uint8_t licence_key[kLicenceKeySize],
                         uint64_t now) const {
  std::lock_guard<std::mutex> lock(mu_);
  int best_stage = 0;
  Error best(Errc::licence_missing,
             "this model requires a licence signed by ed25519 " + hex(licence_key, 32) +
                 ", and none was registered (bmcrypt_register_licence_file, or "
                 "BMCRYPT_LICENSE_FILE)");
  for (const auto& lic : licences_) {
    Error why(Errc::ok, "");
    const int stage = judge(lic, file_id, licence_key, now, device_sn_, &why);
    if (stage == 5) return;
    if (stage > best_stage) {
      best_stage = stage;
      best = why;
    }
  }
  throw best;
}

void LicenceSet::load_environment_once() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (env_loaded_ || !licences_.empty()) return;
    env_loaded_ = true;
  }
  const char* env = std::getenv("BMCRYPT_LICENSE_FILE");
  if (!env || !*env) env = std::getenv("BMCRYPT_LICENCE_FILE");
  if (!env || !*env) return;
  const std::string_view all(env);
  for (size_t pos = 0; pos <= all.size();) {
    const size_t end = std::min(all.find(':', pos), all.size());
    if (end > pos) add(read_licence_file(std::string(all.substr(pos, end - pos))));
    pos = end + 1;
  }
}

LicenceSet& global_licences() {
  static LicenceSet set;
  set.load_environment_once();
  return set;
}

void require_licence(const uint8_t file_id[16], const uint8_t licence_key[kLicenceKeySize],
                     const LicenceSet& licences) {
  licences.require(file_id, licence_key, uint64_t(std::time(nullptr)));
}

}  // namespace bmcrypt
