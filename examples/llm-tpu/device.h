// One TPU device and the device memory this module allocates on it, plus launching a net on
// buffers of ours. Every failure is a std::runtime_error (pybind11 turns it into RuntimeError).
#pragma once
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "vendor.h"

namespace llmtpu {

[[noreturn]] inline void fail(const std::string& what) { throw std::runtime_error("chat: " + what); }

class Device {
 public:
  Device() = default;
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  ~Device() { close(); }

  bool is_open() const { return handle_ != nullptr; }
  int id() const { return id_; }
  bm_handle_t handle() const { return handle_; }

  void open(int id) {
    if (bm_dev_request(&handle_, id) != 0 || !handle_) {
      handle_ = nullptr;
      fail("cannot open device " + std::to_string(id));
    }
    id_ = id;
  }
  void close() {
    if (handle_) bm_dev_free(handle_);
    handle_ = nullptr;
  }

  bm_device_mem_t alloc(size_t bytes) {
    bm_device_mem_t mem{};
    if (bytes == 0) bytes = 4;
    if (bytes >= (size_t(1) << 32) || bm_malloc_device_byte(handle_, &mem, unsigned(bytes)) != 0)
      fail("cannot allocate " + std::to_string(bytes) + " bytes of device memory");
    return mem;
  }
  bm_device_mem_t zeros(size_t bytes) {
    bm_device_mem_t mem = alloc(bytes);
    zero(mem);
    return mem;
  }
  void free(bm_device_mem_t& mem) {
    if (mem.device_addr && handle_) bm_free_device(handle_, mem);
    mem = bm_device_mem_t{};
  }
  void upload(const bm_device_mem_t& dst, const void* src, size_t bytes) {
    if (bytes > dst.size || bm_memcpy_s2d_partial(handle_, dst, const_cast<void*>(src), unsigned(bytes)) != 0)
      fail("host-to-device copy of " + std::to_string(bytes) + " bytes failed");
  }
  void download(void* dst, const bm_device_mem_t& src, size_t bytes) {
    if (bytes > src.size || bm_memcpy_d2s_partial(handle_, dst, src, unsigned(bytes)) != 0)
      fail("device-to-host copy of " + std::to_string(bytes) + " bytes failed");
  }
  void copy(const bm_device_mem_t& dst, size_t dst_offset, const bm_device_mem_t& src,
            size_t src_offset, size_t bytes) {
    if (dst_offset + bytes > dst.size || src_offset + bytes > src.size ||
        bm_memcpy_d2d_byte(handle_, dst, dst_offset, src, src_offset, bytes) != 0)
      fail("device-to-device copy of " + std::to_string(bytes) + " bytes failed");
  }
  void zero(const bm_device_mem_t& mem) {
    const std::vector<uint8_t> zeros(mem.size, 0);
    upload(mem, zeros.data(), zeros.size());
  }

 private:
  bm_handle_t handle_ = nullptr;
  int id_ = -1;
};

inline bm_shape_t shape_of(std::initializer_list<int> dims) {
  bm_shape_t s{};
  for (int d : dims) s.dims[s.num_dims++] = d;
  return s;
}

// Runs `net` on device buffers of ours (bmrt_launch_tensor_ex with user memory): "io alone"
// nets take them as they are, basic nets have the runtime copy them in and out. `in_shapes`
// overrides stage 0's input shapes (dynamic nets).
inline void launch(void* p_bmrt, bm_handle_t handle, const bm_net_info_t* net,
                   const std::vector<bm_device_mem_t>& ins, const std::vector<bm_device_mem_t>& outs,
                   const std::vector<bm_shape_t>& in_shapes = {}) {
  if (int(ins.size()) != net->input_num || int(outs.size()) != net->output_num)
    fail(std::string("net ") + net->name + " launched with the wrong number of tensors");
  std::vector<bm_tensor_t> in(ins.size()), out(outs.size());
  for (size_t i = 0; i < ins.size(); ++i)
    bmrt_tensor_with_device(&in[i], ins[i], net->input_dtypes[i],
                            in_shapes.empty() ? net->stages[0].input_shapes[i] : in_shapes[i]);
  for (size_t i = 0; i < outs.size(); ++i)
    bmrt_tensor_with_device(&out[i], outs[i], net->output_dtypes[i], net->stages[0].output_shapes[i]);
  if (!bmrt_launch_tensor_ex(p_bmrt, net->name, in.data(), int(in.size()), out.data(),
                             int(out.size()), true, false))
    fail(std::string("running net ") + net->name + " failed");
  if (bm_thread_sync(handle) != 0) fail(std::string("net ") + net->name + " did not finish");
}

}  // namespace llmtpu
