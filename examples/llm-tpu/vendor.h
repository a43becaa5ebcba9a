// The few libbmlib / libbmrt calls this module makes, declared here so that no vendor SDK
// header is needed (the simulator's runtime directory ships only the libraries). Layouts follow
// sophgo/libsophon's public bmdef.h / bmlib_runtime.h / bmruntime_interface.h and were checked
// against tpu_mlir 1.30.2's runtime on x86-64 (LP64 only, as the vendor's headers).
#pragma once
#include <cstddef>
#include <cstdint>

extern "C" {

typedef void* bm_handle_t;
typedef int bm_status_t;  // 0 = BM_SUCCESS

// bm_device_mem_t, with its 16-byte union spelled as the device view.
struct bm_device_mem_t {
  uint64_t device_addr;
  uint32_t reserved;
  int32_t dmabuf_fd;
  uint32_t flags;
  uint32_t size;
};
static_assert(sizeof(bm_device_mem_t) == 24, "bm_device_mem_t is 24 bytes");

struct bm_shape_t {
  int num_dims;
  int dims[8];
};

struct bm_tensor_t {
  int dtype;  // bm_data_type_t
  bm_shape_t shape;
  bm_device_mem_t device_mem;
  int st_mode;  // 0 = BM_STORE_1N
};
static_assert(sizeof(bm_tensor_t) == 72, "bm_tensor_t is 72 bytes");

struct bm_stage_info_t {
  bm_shape_t* input_shapes;
  bm_shape_t* output_shapes;
  bm_device_mem_t* input_mems;
  bm_device_mem_t* output_mems;
};

struct bm_net_info_t {
  const char* name;
  bool is_dynamic;
  int input_num;
  const char** input_names;
  int* input_dtypes;
  float* input_scales;
  int output_num;
  const char** output_names;
  int* output_dtypes;
  float* output_scales;
  int stage_num;
  bm_stage_info_t* stages;
  size_t* max_input_bytes;
  size_t* max_output_bytes;
  int* input_zero_point;
  int* output_zero_point;
  int* input_loc_devices;
  int* output_loc_devices;
  int core_num;
  int32_t addr_mode;  // 1 = io alone
};

// libsophon's public bmdef.h (LLM-TPU's copy lacks `number`; the size is the same).
struct memory_t {
  int64_t addr;  // -1: the runtime allocates
  uint64_t size;
  int type;
  int number;
  char reserved[124];
};
struct mem_info_t {
  memory_t instruction_mem;
  memory_t variable_instruction_mem;
  memory_t neuron_mem;
  memory_t coeff_mem;
  memory_t io_mem;
  memory_t reserved[4];
};
static_assert(sizeof(memory_t) == 152 && sizeof(mem_info_t) == 9 * 152, "bmdef.h layout");

enum { BM_FLOAT32 = 0, BM_FLOAT16 = 1, BM_INT32 = 6, BM_BFLOAT16 = 8 };
enum { BM_RUNTIME_SHARE_MEM = 1 };

bm_status_t bm_dev_request(bm_handle_t* handle, int devid);
void bm_dev_free(bm_handle_t handle);
bm_status_t bm_thread_sync(bm_handle_t handle);
bm_status_t bm_malloc_device_byte(bm_handle_t handle, bm_device_mem_t* mem, unsigned int size);
void bm_free_device(bm_handle_t handle, bm_device_mem_t mem);
bm_status_t bm_memcpy_s2d_partial(bm_handle_t handle, bm_device_mem_t dst, void* src,
                                  unsigned int size);
bm_status_t bm_memcpy_d2s_partial(bm_handle_t handle, void* dst, bm_device_mem_t src,
                                  unsigned int size);
bm_status_t bm_memcpy_d2d_byte(bm_handle_t handle, bm_device_mem_t dst, size_t dst_offset,
                               bm_device_mem_t src, size_t src_offset, size_t size);

void* bmrt_create(bm_handle_t handle);
void bmrt_destroy(void* p_bmrt);
void bmrt_destroy_without_coeff(void* p_bmrt);
void bmrt_set_flags(void* p_bmrt, uint32_t flags);
bool bmrt_load_bmodel(void* p_bmrt, const char* path);
bool bmrt_get_bmodel_info(const char* path, mem_info_t* mem_info);
bool bmrt_load_bmodel_with_mem(void* p_bmrt, const char* path, mem_info_t* mem_info);
const bm_net_info_t* bmrt_get_network_info(void* p_bmrt, const char* net_name);
int bmrt_get_network_number(void* p_bmrt);
void bmrt_get_network_names(void* p_bmrt, const char*** names);  // the array is malloc'ed
void bmrt_tensor_with_device(bm_tensor_t* tensor, bm_device_mem_t mem, int dtype, bm_shape_t shape);
bool bmrt_launch_tensor_ex(void* p_bmrt, const char* net_name, const bm_tensor_t* inputs,
                           int input_num, bm_tensor_t* outputs, int output_num, bool user_mem,
                           bool user_stmode);
void bmrt_trace(void* p_bmrt);
}
