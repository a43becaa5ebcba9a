#include "verify.h"

#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include <cryptopp/sha.h>

#include "bmodel_generated.h"
#include "error.h"
#include "layout.h"
#include "recipients.h"
#include "restore.h"
#include "walk.h"
#include "weights.h"

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

// FORMAT.md §6.1 on a FlatBuffer (without its manifest): the size limit, the walk, flatc's
// verifier, then where the encrypted weights lie in a binary region of region_size bytes.
std::vector<SealedRegion> check_flatbuffer(ByteView fb, uint64_t region_size, const bmodel::Model*& model) {
  if (fb.size > kMaxFlatBufferSize) throw Error(Errc::corrupt, "the FlatBuffer is over the 1 GiB limit");
  const std::vector<BinaryRef> binaries = walk_flatbuffer(fb);
  // A second line of defence before the generated accessors: flatc's verifier accepts
  // everything the walk does (its table budget is set above the walk's).
  flatbuffers::Verifier verifier(fb.data, fb.size, 64,
                                 flatbuffers::uoffset_t(kMaxFlatBufferSize + kMaxWalkExtraCost));
  if (!bmodel::VerifyModelBuffer(verifier)) throw Error(Errc::corrupt, "the FlatBuffer does not verify");
  model = bmodel::GetModel(fb.data);
  return plan_sealed_regions(*model, binaries, region_size);
}

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
    if (e1_.version == kFormatVersion2) {
      report_.key_id = stanzas_in_use(ByteView(e1_.key_area.data(), e1_.key_area.size()))[0].key_id();
    } else {
      report_.key_id = e1_.key_block.key_id();
    }
  }

  // §6 step 2: key, unwrap, decrypt E1.
  void open_header_tail() {
    // Version 2: the only unwrap (and licence check) of the file; E2 and E3 use this DK.
    dk_ = ring_.data_key(e1_, file_.sub(8, header_size_ - 8));
    SecretBytes tail(kHeaderTailSize);
    open_envelope(e1_, file_.sub(8, header_size_ - 8), dk_, tail.data());
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

  // Another envelope of this file: its key block is not checked on its own, it must equal E1's
  // (checked), so that an altered one reads as tampered, as in the Python reader.
  static EnvelopeHeader parse_member(ByteView envelope) { return parse_envelope(envelope, false); }

  // An envelope of this file: the same version, file_id and key block (version 2: dk_check) as
  // E1. Then E1's DK opens it.
  void same_file(const EnvelopeHeader& h) const {
    if (h.version != e1_.version)
      throw Error(Errc::corrupt, "the file mixes envelopes of format versions 1 and 2");
    const bool same_key = h.version == kFormatVersion2 ? h.dk_check == e1_.dk_check
                                                       : h.key_block == e1_.key_block;
    if (h.file_id != e1_.file_id || !same_key) throw Error(Errc::tampered, "envelope from another file");
  }

  // §6 step 4: E2, its manifest, the FlatBuffer (kind 2 with a manifest, or model_tool's kind 0
  // without, whatever E1's kind: the Python reader's rule).
  void open_flatbuffer() {
    const ByteView e2 = file_.sub(header_size_, tail_.flatbuffers_size);
    const EnvelopeHeader h = parse_member(e2);
    same_file(h);
    fb_plain_.New(size_t(h.plaintext_len));
    open_envelope(h, e2, dk_, fb_plain_.data());
    size_t fb_len = fb_plain_.size();
    if (h.kind == Kind::flatbuffer) {
      manifest_ = parse_manifest(ByteView(fb_plain_.data(), fb_plain_.size()));
      fb_len = size_t(manifest_->flatbuffer_len);
    } else if (h.kind != Kind::generic) {
      throw Error(Errc::corrupt, "the FlatBuffer envelope has the wrong kind");
    }
    regions_ = check_flatbuffer(ByteView(fb_plain_.data(), fb_len), binary_.size, model_);
    // §8.4's rules on the record itself, before any weight envelope is opened (as the Python
    // reader). Its SHA-256 concerns the rebuilt original: decrypting checks it, verifying (which
    // rebuilds nothing) does not, in Python and here alike.
    if (manifest_ && manifest_->restore_len) {
      restore_ = parse_restore_record(ByteView(fb_plain_.data() + fb_len, size_t(manifest_->restore_len)));
      check_restore_extents(*restore_, binary_.size, regions_);
    }
  }

  // §6 step 5: each envelope against its check_code (where they lie was checked with the
  // FlatBuffer, §6.1).
  void check_weights() {
    report_.nets = model_->net()->size();
    for (const SealedRegion& region : regions_) {
      about("weights of net '" + region.net + "'", [&] { check_region(region); });
      encrypted_.emplace_back(region.start, region.size);
    }
  }

  void check_region(const SealedRegion& region) {
    const ByteView envelope = binary_.sub(size_t(region.start), size_t(region.size));
    const EnvelopeHeader h = parse_member(envelope);
    if (h.kind != Kind::weights && h.kind != Kind::generic)
      throw Error(Errc::corrupt, "not a weight envelope");
    same_file(h);
    if (h.plaintext_len != region.decrypt_size)
      throw Error(Errc::corrupt, "decrypt_size does not match the envelope");
    CryptoPP::SHA256 sha;
    stream_envelope(h, envelope, dk_, [&](const uint8_t* p, size_t n) { sha.Update(p, n); });
    Digest digest;
    sha.Final(digest.data());
    if (region.check_code.size != digest.size() ||
        std::memcmp(region.check_code.data, digest.data(), digest.size()) != 0)
      throw Error(Errc::tampered, "the weights do not match their check_code");
    ++report_.weight_envelopes;
    report_.weight_bytes += h.plaintext_len;
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
  SecretBytes dk_;
  HeaderTail tail_;
  ByteView binary_;
  SecretBytes fb_plain_;
  std::optional<Manifest> manifest_;
  const bmodel::Model* model_ = nullptr;
  std::vector<SealedRegion> regions_;
  std::optional<RestoreRecord> restore_;
  Ranges encrypted_;
};

}  // namespace

VerifyReport verify_bmodel(ByteView file, KeyRing& ring) { return FileVerifier(file, ring).run(); }

}  // namespace bmcrypt
