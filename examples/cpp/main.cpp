// bmcrypt_example: load a bmcrypt-encrypted .bmodel with the vendor runtime, list its nets and run
// one of them — the few calls a C++ runtime needs to adopt bmcrypt.
//
//   bmcrypt_example [--verify-first] KEYFILE MODEL [NET]
//   BMCRYPT_KEY_FILE=KEYFILE bmcrypt_example --decrypt-lib LIBBMCRYPT MODEL [NET]
//
// KEYFILE comes from `bmcrypt keygen`, MODEL from `bmcrypt encrypt`. NET defaults to the first
// net. The net runs once on zero-filled inputs; each output is printed with an FNV-1a checksum
// of its bytes. Then bmrt_trace re-reads every weight from device memory and prints
// "Total 0 errors" when all of them match the model's SHA-256 check codes.
//
// Loading, two ways:
//   default          bmrt_load_bmodel_with_decrypt(p_bmrt, MODEL, decrypt): the runtime reads the
//                    file and calls bmcrypt's `decrypt` for the header, the FlatBuffer and each
//                    weight blob; each piece is authenticated before it is handed over.
//   --verify-first   bmcrypt_load_bmodel(p_bmrt, MODEL): bmcrypt first authenticates the whole
//                    file, then loads it the same way. A wrong key or a modified file is refused
//                    before the runtime reads a byte. Recommended.
//   --decrypt-lib    bmrt_load_bmodel_with_decrypt_lib(p_bmrt, MODEL, LIBBMCRYPT): no bmcrypt call
//                    at all, the route for a runtime you cannot change beyond that one call. The
//                    vendor runtime dlopens the library and looks up `decrypt`; libbmcrypt reads
//                    the key from BMCRYPT_KEY_FILE (or BMCRYPT_PASSPHRASE).
//
// Exit status: 0 success, 1 failure (message on stderr), 2 usage.
#include <bmcrypt.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

// ---- the vendor runtime (libbmrt.so, libbmlib.so) ---------------------------------------------
// Declared here instead of included, so that the example builds without the vendor SDK. The
// declarations follow the public headers of sophgo/libsophon (bmlib_runtime.h, bmdef.h,
// bmruntime_interface.h) and were checked against the runtime of tpu_mlir 1.30.2 (x86-64).
// bm_net_info_t is only ever read through the runtime's pointer, so its trailing fields (zero
// points, devices, core count, address mode) are left out.
extern "C" {

struct bm_context;          // opaque device handle (bm_handle_t)
struct bm_device_mem_t;     // device memory descriptor, only pointed to here

enum { BM_MAX_DIMS_NUM = 8 };
struct bm_shape_t {
  int num_dims;
  int dims[BM_MAX_DIMS_NUM];
};

struct bm_stage_info_t {
  bm_shape_t* input_shapes;   // [input_num]
  bm_shape_t* output_shapes;  // [output_num]
  bm_device_mem_t* input_mems;
  bm_device_mem_t* output_mems;
};

struct bm_net_info_t {
  const char* name;
  bool is_dynamic;
  int input_num;
  const char** input_names;
  int* input_dtypes;  // bm_data_type_t, an int-sized enum: see kDtypes below
  float* input_scales;
  int output_num;
  const char** output_names;
  int* output_dtypes;
  float* output_scales;
  int stage_num;
  bm_stage_info_t* stages;     // [stage_num]; stage 0 holds the largest shapes
  size_t* max_input_bytes;     // [input_num]
  size_t* max_output_bytes;    // [output_num]
};

typedef uint8_t* (*bm_decrypt_func)(const uint8_t* in, uint64_t in_len, uint64_t* out_len);

int bm_dev_request(bm_context** handle, int devid);  // bm_status_t, 0 = success
void bm_dev_free(bm_context* handle);
void* bmrt_create(bm_context* handle);
void bmrt_destroy(void* p_bmrt);
bool bmrt_load_bmodel_with_decrypt(void* p_bmrt, const char* path, bm_decrypt_func decrypt);
bool bmrt_load_bmodel_with_decrypt_lib(void* p_bmrt, const char* path, const char* lib_path);
int bmrt_get_network_number(void* p_bmrt);
void bmrt_get_network_names(void* p_bmrt, const char*** names);  // the array is malloc()ed
const bm_net_info_t* bmrt_get_network_info(void* p_bmrt, const char* net);
bool bmrt_launch_data(void* p_bmrt, const char* net, void* const inputs[],
                      const bm_shape_t input_shapes[], int input_num, void* outputs[],
                      bm_shape_t output_shapes[], int output_num, bool user_mem);
void bmrt_trace(void* p_bmrt);

}  // extern "C"

namespace {

// ---- small helpers ---------------------------------------------------------------------------

struct Dtype {
  const char* name;
  unsigned bits;
};
// Indexed by bm_data_type_t.
const Dtype kDtypes[] = {{"f32", 32}, {"f16", 16}, {"i8", 8},   {"u8", 8},
                         {"i16", 16}, {"u16", 16}, {"i32", 32}, {"u32", 32},
                         {"bf16", 16}, {"i4", 4},  {"u4", 4}};

const Dtype* dtype(int code) {
  return code >= 0 && code < int(sizeof kDtypes / sizeof kDtypes[0]) ? &kDtypes[code] : nullptr;
}

std::string describe(const char* name, const bm_shape_t& shape, int dtype_code) {
  std::string s = std::string(name) + " [";
  for (int i = 0; i < shape.num_dims; ++i) s += (i ? ", " : "") + std::to_string(shape.dims[i]);
  const Dtype* t = dtype(dtype_code);
  return s + "] " + (t ? t->name : "dtype " + std::to_string(dtype_code));
}

uint64_t byte_size(const bm_shape_t& shape, int dtype_code) {
  uint64_t count = 1;
  for (int i = 0; i < shape.num_dims; ++i) count *= uint64_t(shape.dims[i]);
  const Dtype* t = dtype(dtype_code);
  return t ? (count * t->bits + 7) / 8 : 0;
}

uint64_t fnv1a64(const uint8_t* data, uint64_t size) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint64_t i = 0; i < size; ++i) h = (h ^ data[i]) * 0x100000001b3ull;
  return h;
}

// The device and the runtime on it. The destructor always runs bmrt_destroy + bm_dev_free, in
// that order: without them the simulator crashes at process exit.
class Runtime {
 public:
  Runtime() {
    if (bm_dev_request(&device_, 0) != 0) {
      device_ = nullptr;
      return;
    }
    bmrt_ = bmrt_create(device_);
  }
  ~Runtime() {
    if (bmrt_) bmrt_destroy(bmrt_);
    if (device_) bm_dev_free(device_);
  }
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  void* bmrt() const { return bmrt_; }

 private:
  bm_context* device_ = nullptr;
  void* bmrt_ = nullptr;
};

// ---- the steps -------------------------------------------------------------------------------

bool load(void* bmrt, const char* model, bool verify_first, const char* decrypt_lib) {
  if (decrypt_lib) return bmrt_load_bmodel_with_decrypt_lib(bmrt, model, decrypt_lib);
  if (verify_first) return bmcrypt_load_bmodel(bmrt, model);
  // bmcrypt's exported `decrypt` has exactly the callback signature the runtime expects.
  return bmrt_load_bmodel_with_decrypt(bmrt, model, decrypt);
}

std::vector<std::string> net_names(void* bmrt) {
  const char** names = nullptr;
  bmrt_get_network_names(bmrt, &names);
  std::vector<std::string> out(names, names + bmrt_get_network_number(bmrt));
  std::free(names);
  return out;
}

void print_nets(void* bmrt, const std::vector<std::string>& names) {
  std::printf("%zu net%s\n", names.size(), names.size() == 1 ? "" : "s");
  for (size_t n = 0; n < names.size(); ++n) {
    const bm_net_info_t* info = bmrt_get_network_info(bmrt, names[n].c_str());
    const bm_stage_info_t& stage = info->stages[0];
    std::printf("net %zu: %s (%s, %d stage%s)\n", n, info->name,
                info->is_dynamic ? "dynamic" : "static", info->stage_num,
                info->stage_num == 1 ? "" : "s");
    for (int i = 0; i < info->input_num; ++i) {
      const std::string in =
          describe(info->input_names[i], stage.input_shapes[i], info->input_dtypes[i]);
      std::printf("  input  %s\n", in.c_str());
    }
    for (int i = 0; i < info->output_num; ++i) {
      const std::string out =
          describe(info->output_names[i], stage.output_shapes[i], info->output_dtypes[i]);
      std::printf("  output %s\n", out.c_str());
    }
  }
}

// Runs `net` once on zero-filled inputs of its stage-0 shapes; prints each output's checksum.
bool run(void* bmrt, const char* net) {
  const bm_net_info_t* info = bmrt_get_network_info(bmrt, net);
  if (!info) {
    std::fprintf(stderr, "bmcrypt_example: the model has no net named '%s'\n", net);
    return false;
  }
  const bm_stage_info_t& stage = info->stages[0];
  std::vector<std::vector<uint8_t>> in_buf(info->input_num), out_buf(info->output_num);
  std::vector<void*> in_ptr(info->input_num), out_ptr(info->output_num);
  std::vector<bm_shape_t> in_shape(stage.input_shapes, stage.input_shapes + info->input_num);
  std::vector<bm_shape_t> out_shape(info->output_num);
  for (int i = 0; i < info->input_num; ++i) {
    in_buf[i].assign(info->max_input_bytes[i], 0);
    in_ptr[i] = in_buf[i].data();
  }
  for (int i = 0; i < info->output_num; ++i) {
    out_buf[i].assign(info->max_output_bytes[i], 0);
    out_ptr[i] = out_buf[i].data();
  }

  std::printf("run %s on zero inputs\n", net);
  if (!bmrt_launch_data(bmrt, net, in_ptr.data(), in_shape.data(), info->input_num, out_ptr.data(),
                        out_shape.data(), info->output_num, /*user_mem=*/true)) {
    std::fprintf(stderr, "bmcrypt_example: bmrt_launch_data failed for net '%s'\n", net);
    return false;
  }
  for (int i = 0; i < info->output_num; ++i) {
    // The runtime wrote the actual output shapes back; never read past our buffer.
    uint64_t size = byte_size(out_shape[i], info->output_dtypes[i]);
    if (size > out_buf[i].size()) size = out_buf[i].size();
    std::printf("  output %s: %llu bytes, fnv1a64 %016llx\n",
                describe(info->output_names[i], out_shape[i], info->output_dtypes[i]).c_str(),
                (unsigned long long)size, (unsigned long long)fnv1a64(out_buf[i].data(), size));
  }
  return true;
}

int usage() {
  std::fprintf(stderr,
               "usage: bmcrypt_example [--verify-first] KEYFILE MODEL [NET]\n"
               "       BMCRYPT_KEY_FILE=KEYFILE bmcrypt_example --decrypt-lib LIBBMCRYPT MODEL [NET]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  bool verify_first = false;
  const char* decrypt_lib = nullptr;
  std::vector<const char*> args;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--verify-first") == 0)
      verify_first = true;
    else if (std::strcmp(argv[i], "--decrypt-lib") == 0 && i + 1 < argc)
      decrypt_lib = argv[++i];
    else if (argv[i][0] == '-')
      return usage();
    else
      args.push_back(argv[i]);
  }
  // With --decrypt-lib there is no KEYFILE argument: the key comes from the environment.
  const size_t first = decrypt_lib ? 0 : 1;
  if ((decrypt_lib && verify_first) || args.size() < first + 1 || args.size() > first + 2)
    return usage();
  const char* model = args[first];
  const char* net_arg = args.size() == first + 2 ? args[first + 1] : nullptr;

  // Keys first: a missing or unusable key file fails before the device is opened.
  if (!decrypt_lib && !bmcrypt_register_key_file(args[0])) {
    std::fprintf(stderr, "bmcrypt_example: %s\n", bmcrypt_last_error());
    return 1;
  }
  std::printf("bmcrypt %s, model %s\n", bmcrypt_version(), model);

  Runtime rt;  // from here on every return path runs bmrt_destroy + bm_dev_free
  if (!rt.bmrt()) {
    std::fprintf(stderr, "bmcrypt_example: cannot open device 0 (bm_dev_request failed)\n");
    return 1;
  }
  std::fflush(stdout);  // the runtime logs on its own streams; keep our lines in order
  if (!load(rt.bmrt(), model, verify_first, decrypt_lib)) {
    // The decrypt callback runs on this thread, so a refusal by bmcrypt is described here; an
    // empty message means the runtime itself refused the file (its log says why).
    const char* why = bmcrypt_last_error();
    std::fprintf(stderr, "bmcrypt_example: cannot load %s: %s\n", model,
                 *why ? why : "the runtime refused the file (see its messages above)");
    return 1;
  }
  std::printf("loaded with %s\n",
              decrypt_lib    ? "bmrt_load_bmodel_with_decrypt_lib (the runtime loaded the library)"
              : verify_first ? "bmcrypt_load_bmodel (whole file verified first)"
                             : "bmrt_load_bmodel_with_decrypt + bmcrypt's decrypt");

  const std::vector<std::string> names = net_names(rt.bmrt());
  if (names.empty()) {
    std::fprintf(stderr, "bmcrypt_example: the model has no nets\n");
    return 1;
  }
  print_nets(rt.bmrt(), names);
  std::fflush(stdout);
  const bool ran = run(rt.bmrt(), net_arg ? net_arg : names[0].c_str());
  std::fflush(stdout);

  // Re-reads every weight from device memory and compares it with the model's SHA-256 check
  // codes: "Total 0 errors" proves the decrypted weights reached the device intact.
  bmrt_trace(rt.bmrt());
  return ran ? 0 : 1;
}
