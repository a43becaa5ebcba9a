// Loading a bmodel into a bmruntime, the four ways init() can (is_decrypt x memory_prealloc),
// and letting it go again.
#pragma once
#include <string>
#include <vector>

#include "bmcrypt.h"
#include "device.h"

namespace llmtpu {

[[noreturn]] inline void fail_bmcrypt() {
  throw std::runtime_error(std::string("bmcrypt: ") + bmcrypt_last_error());
}

// One loaded bmodel: its runtime and the device memory allocated for it.
struct Model {
  void* bmrt = nullptr;
  std::vector<bm_device_mem_t> owned;
};

// Encrypted files go through bmcrypt_load_bmodel (bmcrypt's C API hands out no whole plaintext
// for the _data_with_mem load); plain ones through bmrt_load_bmodel_with_mem with memory_prealloc.
inline void load_model(Device& dev, Model& m, const std::string& path, bool is_decrypt,
                       bool memory_prealloc) {
  const int state = bmcrypt_file_state(path.c_str());
  if (state < 0) fail_bmcrypt();
  if (is_decrypt) {
    if (state == 0)
      fail(path + " is not encrypted: drop --is_decrypt, or encrypt it with `bmcrypt encrypt`");
    if (memory_prealloc) bmrt_set_flags(m.bmrt, BM_RUNTIME_SHARE_MEM);
    // Verified whole (every envelope, every weight's SHA-256) before the runtime reads it.
    if (!bmcrypt_load_bmodel(m.bmrt, path.c_str())) fail_bmcrypt();
    return;
  }
  if (state != 0)
    fail(path + " is encrypted: set is_decrypt (pipeline.py --is_decrypt) and give the key "
         "(BMCRYPT_KEY_FILE)");
  if (!memory_prealloc) {
    if (!bmrt_load_bmodel(m.bmrt, path.c_str())) fail("the vendor runtime could not load " + path);
    return;
  }
  mem_info_t info{};
  if (!bmrt_get_bmodel_info(path.c_str(), &info)) fail("the vendor runtime cannot size " + path);
  // Ours: instructions, neurons, io. The weights: libbmrt's (a coeff address of ours puts every
  // weight region at that one address on tpu_mlir 1.30.2's runtime).
  for (memory_t* part :
       {&info.instruction_mem, &info.variable_instruction_mem, &info.neuron_mem, &info.io_mem}) {
    if (!part->size) continue;
    m.owned.push_back(dev.alloc(part->size));
    part->addr = int64_t(m.owned.back().device_addr);
  }
  info.coeff_mem.addr = -1;
  bmrt_set_flags(m.bmrt, BM_RUNTIME_SHARE_MEM);
  if (!bmrt_load_bmodel_with_mem(m.bmrt, path.c_str(), &info))
    fail("the vendor runtime could not load " + path);
}

inline void release_model(Device& dev, Model& m, bool keep_weights) {
  if (m.bmrt) (keep_weights ? bmrt_destroy_without_coeff : bmrt_destroy)(m.bmrt);
  m.bmrt = nullptr;
  for (auto& mem : m.owned) dev.free(mem);
  m.owned.clear();
}

}  // namespace llmtpu
