#include "verify.h"

#include <cstring>
#include <map>
#include <optional>
#include <utility>

#include <cryptopp/sha.h>

#include "bmodel_generated.h"
#include "error.h"
#include "layout.h"

namespace bmcrypt {
namespace {

using Digest = std::array<uint8_t, CryptoPP::SHA256::DIGESTSIZE>;

// Runs f; a format or authentication error from it names `what` (the part of the file) first.
// Key errors stay as they are: they concern the file as a whole.
template <class F>
auto about(const std::string& what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    switch (e.code()) {
      case Errc::truncated:
      case Errc::corrupt:
      case Errc::unsupported_version:
      case Errc::tampered: throw Error(e.code(), what + ": " + e.what());
      default: throw;
    }
  }
}

struct WeightRegion {
  uint64_t plaintext_len;
  Digest sha256;
};

class FileVerifier {
 public:
  FileVerifier(ByteView file, KeyRing& ring) : file_(file), ring_(ring) {}

  VerifyReport run() {
    about("header", [&] { check_plain_header(); });
    about("header", [&] { open_header_tail(); });
    check_lengths();
    about("FlatBuffer", [&] { open_flatbuffer(); });
    check_weights();
    about("clear regions", [&] { check_clear_regions(); });
    return report_;
  }

 private:
  // §6 step 1: the clear 8 bytes and E1's limits.
  void check_plain_header() {
    switch (classify_bmodel(file_)) {
      case FileState::plain: throw Error(Errc::not_encrypted, "a plain bmodel, not encrypted");
      case FileState::foreign:
        throw Error(Errc::foreign_encrypted, "encrypted by another tool (no bmcrypt envelope)");
      case FileState::bmcrypt: break;
    }
    header_size_ = load_le32(file_.data + 4);
    if (header_size_ < kMinEncryptedHeaderSize)
      throw Error(Errc::corrupt, "header size " + std::to_string(header_size_) + " is too small");
    if (file_.size < header_size_) throw Error(Errc::truncated, "the file ends inside its header");
    e1_ = parse_envelope(file_.sub(8, header_size_ - 8));
    if (e1_.kind != Kind::header_tail && e1_.kind != Kind::generic)
      throw Error(Errc::corrupt, "the header envelope has the wrong kind");
    if (e1_.plaintext_len != kHeaderTailSize)
      throw Error(Errc::corrupt, "the header envelope does not hold 56 bytes");
    report_.typed = e1_.kind == Kind::header_tail;
    report_.key_id = e1_.key_block.key_id();
  }

  // §6 step 2: key, unwrap, decrypt E1.
  void open_header_tail() {
    const SecretBytes dk = ring_.data_key(e1_);
    SecretBytes tail(kHeaderTailSize);
    open_envelope(e1_, file_.sub(8, header_size_ - 8), dk, tail.data());
    tail_ = parse_header_tail(tail.data());
  }

  // §6 step 3: the file ends exactly where the header says.
  void check_lengths() {
    const uint64_t fb = tail_.flatbuffers_size, bin = tail_.binary_size;
    if (bin > file_.size || header_size_ + fb + bin > file_.size)
      throw Error(Errc::truncated, "the file is shorter than its header says");
    if (header_size_ + fb + bin < file_.size)
      throw Error(Errc::corrupt, "the file is longer than its header says");
    binary_ = file_.sub(header_size_ + fb, size_t(bin));
  }

  // An envelope of this file: the kind its place requires, the same file_id and key block as E1.
  EnvelopeHeader parse_member(ByteView envelope, Kind typed_kind) {
    EnvelopeHeader h = parse_envelope(envelope);
    if (h.kind != (report_.typed ? typed_kind : Kind::generic))
      throw Error(Errc::corrupt, "envelope of the wrong kind");
    if (h.file_id != e1_.file_id || !(h.key_block == e1_.key_block))
      throw Error(Errc::tampered, "envelope from another file");
    return h;
  }

  // §6 step 4: E2, its manifest, the FlatBuffer.
  void open_flatbuffer() {
    const ByteView e2 = file_.sub(header_size_, tail_.flatbuffers_size);
    const EnvelopeHeader h = parse_member(e2, Kind::flatbuffer);
    fb_plain_.New(size_t(h.plaintext_len));
    open_envelope(h, e2, ring_.data_key(h), fb_plain_.data());
    size_t fb_len = fb_plain_.size();
    if (report_.typed) {
      manifest_ = parse_manifest(ByteView(fb_plain_.data(), fb_plain_.size()));
      fb_len -= kManifestSize;
    }
    if (fb_len >= FLATBUFFERS_MAX_BUFFER_SIZE) throw Error(Errc::corrupt, "FlatBuffer too large");
    flatbuffers::Verifier verifier(fb_plain_.data(), fb_len, 64, 10'000'000);
    if (!bmodel::VerifyModelBuffer(verifier))
      throw Error(Errc::corrupt, "the FlatBuffer does not verify");
    model_ = bmodel::GetModel(fb_plain_.data());
  }

  // §6 step 5: every encrypted coeff.
  void check_weights() {
    const auto* nets = model_->net();
    for (flatbuffers::uoffset_t i = 0; i < nets->size(); ++i) {
      const bmodel::Net* net = nets->Get(i);
      const std::string what = "weights of net '" + net->name()->str() + "'";
      ++report_.nets;
      if (!net->parameter()) continue;
      for (const bmodel::NetParameter* stage : *net->parameter()) {
        const bmodel::CoeffMem* coeff = stage->coeff_mem();
        if (coeff && coeff->encrypt_mode() != 0) about(what, [&] { check_coeff(*coeff); });
      }
    }
  }

  void check_coeff(const bmodel::CoeffMem& coeff) {
    if (coeff.encrypt_mode() != 1)
      throw Error(Errc::corrupt, "unknown encrypt_mode " + std::to_string(coeff.encrypt_mode()));
    const bmodel::Binary* range = coeff.binary_coeff();
    if (!range || range->start() > binary_.size || range->size() > binary_.size - range->start())
      throw Error(Errc::corrupt, "the encrypted coeff lies outside the binary region");
    const auto key = std::make_pair(range->start(), range->size());
    auto seen = regions_.find(key);
    if (seen == regions_.end()) {
      seen = regions_.emplace(key, open_weights(binary_.sub(size_t(key.first), size_t(key.second)))).first;
      encrypted_.push_back(key);
      ++report_.weight_envelopes;
      report_.weight_bytes += seen->second.plaintext_len;
    }
    if (seen->second.plaintext_len != coeff.decrypt_size())
      throw Error(Errc::corrupt, "decrypt_size does not match the envelope");
    const auto* check = coeff.check_code();
    if (!check || check->size() != seen->second.sha256.size())
      throw Error(Errc::corrupt, "check_code is not a SHA-256");
    if (std::memcmp(check->data(), seen->second.sha256.data(), seen->second.sha256.size()) != 0)
      throw Error(Errc::tampered, "the weights do not match their check_code");
  }

  WeightRegion open_weights(ByteView envelope) {
    const EnvelopeHeader h = parse_member(envelope, Kind::weights);
    CryptoPP::SHA256 sha;
    stream_envelope(h, envelope, ring_.data_key(h),
                    [&](const uint8_t* p, size_t n) { sha.Update(p, n); });
    WeightRegion region{h.plaintext_len, {}};
    sha.Final(region.sha256.data());
    return region;
  }

  // §6 step 6.
  void check_clear_regions() {
    const Manifest clear = clear_region_digest(binary_, encrypted_);
    report_.clear_bytes = clear.clear_len;
    if (!manifest_) return;  // model_tool's files have no manifest: not covered
    if (clear.clear_len != manifest_->clear_len ||
        !equal_ct(clear.clear_digest.data(), manifest_->clear_digest.data(), clear.clear_digest.size()))
      throw Error(Errc::tampered, "the clear bytes do not match their digest");
    report_.clear_covered = true;
  }

  ByteView file_;
  KeyRing& ring_;
  VerifyReport report_;
  uint32_t header_size_ = 0;
  EnvelopeHeader e1_;
  HeaderTail tail_;
  ByteView binary_;
  SecretBytes fb_plain_;
  std::optional<Manifest> manifest_;
  const bmodel::Model* model_ = nullptr;
  std::map<std::pair<uint64_t, uint64_t>, WeightRegion> regions_;
  Ranges encrypted_;
};

}  // namespace

VerifyReport verify_bmodel(ByteView file, KeyRing& ring) { return FileVerifier(file, ring).run(); }

}  // namespace bmcrypt
