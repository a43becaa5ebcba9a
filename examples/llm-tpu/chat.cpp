// `chat.Qwen`: the Python interface of LLM-TPU's models/Qwen1_5/share_cache_demo, on
// bmcrypt-encrypted share-cache bmodels. Written against libbmrt/libbmlib (declared in vendor.h)
// and bmcrypt.h only; the demo's pipeline.py runs on it unchanged (README.md).
//
// The nets (share-cache layout; S share, U unshare, SEQ the decode history):
//   embedding [1,S] -> block_N: the shared prefix, once, its k/v into cache rows [0, n)
//   embedding_unshare [1,U] -> block_unshare_N (history = cache rows [0, S)): a question after
//     the prefix, its k/v into cache rows [n, n+u); every question overwrites the previous one
//   embedding_cache [1,1] -> block_cache_N (history = the whole cache): one token at a time
//   lm_head -> greedy_head | penalty_sample_head
// Masks are additive (-10000 in the mask's dtype), as in bmcrypt's own engine (bmcrypt/chat/
// engine.py), whose conventions this follows step by step.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "bmcrypt.h"
#include "device.h"
#include "load.h"

namespace py = pybind11;
using llmtpu::fail;
using llmtpu::fail_bmcrypt;
using llmtpu::Model;
using llmtpu::shape_of;

class Qwen {
 public:
  // Attributes of the demo's pybind class (pipeline.py reads and writes them).
  int SEQLEN = 0, MAX_SHARE_LENGTH = 0, MAX_UNSHARE_LENGTH = 0, NUM_LAYERS = 0;
  int share_length = 0, unshare_length = 0;
  std::vector<int> unshare_tokens;
  float temperature = 1.0f, top_p = 1.0f, repeat_penalty = 1.0f;
  int repeat_last_n = 32, max_new_tokens = 1024;
  std::string generation_mode = "greedy", prompt_mode = "prompted";
  bool memory_prealloc = false, io_alone_reuse = false, is_decrypt = false;

  Qwen() : rng_(std::random_device()()) {}
  ~Qwen() {
    try {
      deinit();
    } catch (...) {
    }
  }

  // The demo encrypts the file in place with a key made up in the process. bmcrypt never does:
  // a bmcrypt file passes, anything else is refused with what to run instead.
  void encrypt_bmodel(const std::string& path) {
    switch (bmcrypt_file_state(path.c_str())) {
      case 1: return;
      case 0:
        fail(path + " is a plain bmodel, and this module makes up no key: encrypt it once with "
             "`bmcrypt encrypt --key KEYFILE " + path + "` (bmcrypt keygen -o KEYFILE makes a key), "
             "then run with --is_decrypt and BMCRYPT_KEY_FILE=KEYFILE");
      case 2:
        fail(path + " was encrypted by another tool, not bmcrypt: restore the plain bmodel and "
             "use `bmcrypt encrypt`");
      default: fail_bmcrypt();
    }
  }

  // Not in the demo: the key for is_decrypt (else BMCRYPT_KEY_FILE, or BMCRYPT_PASSPHRASE).
  void set_key_file(const std::string& path) {
    bmcrypt_clear_keys();
    if (!bmcrypt_register_key_file(path.c_str())) fail_bmcrypt();
  }

  void init(const std::vector<int>& devices, const std::string& path) {
    if (devices.size() != 1) fail("this module runs a model on one device; give one device id");
    if (model_.bmrt) free_device();
    if (dev_.is_open() && dev_.id() != devices[0]) {
      if (!retired_.empty() || !past_key_.empty())
        fail("a model is still on device " + std::to_string(dev_.id()) + ": deinit() first");
      dev_.close();
    }
    if (!dev_.is_open()) dev_.open(devices[0]);
    model_.bmrt = bmrt_create(dev_.handle());
    if (!model_.bmrt) fail("bmrt_create failed on device " + std::to_string(devices[0]));
    try {
      load(model_, path);
      find_nets();
      allocate_buffers();
      prepare_cache();
    } catch (...) {
      release(model_, false);
      model_ = Model{};
      throw;
    }
  }

  // The demo frees the model's memory but the weights; here: with memory_prealloc the runtime
  // goes (bmrt_destroy_without_coeff: the weights stay in libbmrt's per-device registry and the
  // next load of equal weights finds them); without it, as the demo, the model stays on the
  // device until deinit(). The KV cache always stays, for io_alone_reuse.
  void free_device() {
    if (!model_.bmrt) return;
    if (memory_prealloc)
      release(model_, true);
    else
      retired_.push_back(model_);
    model_ = Model{};
  }

  void deinit() {
    if (model_.bmrt) release(model_, false);
    model_ = Model{};
    for (Model& m : retired_) release(m, false);
    retired_.clear();
    free_cache();
    dev_.close();
  }

  void empty_kvcache() {
    require_model();
    for (auto* side : {&past_key_, &past_value_})
      for (auto& mem : *side) dev_.zero(mem);
  }

  void forward_first(const std::vector<int>& tokens) {
    require_model();
    const int n = int(tokens.size());
    if (n <= 0 || n > MAX_SHARE_LENGTH)
      fail("a shared prefix of " + std::to_string(n) + " tokens does not fit this model's " +
           std::to_string(MAX_SHARE_LENGTH));
    share_length = n;
    unshare_length = 0;
    // Dynamic builds run the prompt's length, static ones the whole S (rows past n all masked).
    const int run = net_block_[0]->is_dynamic ? n : MAX_SHARE_LENGTH;
    std::vector<int> ids(MAX_SHARE_LENGTH, 0);
    std::copy(tokens.begin(), tokens.end(), ids.begin());
    const int embed_len = net_embed_->is_dynamic ? n : MAX_SHARE_LENGTH;
    dev_.upload(ids_share_, ids.data(), embed_len * 4);
    launch(net_embed_, {ids_share_}, {hidden_[0]}, {shape_of({1, embed_len})});
    std::vector<int> positions(run, 0);
    std::vector<uint8_t> open(size_t(run) * run, 0);
    for (int i = 0; i < n; ++i) {
      positions[i] = i;
      for (int j = 0; j <= i; ++j) open[size_t(i) * run + j] = 1;
    }
    dev_.upload(pos_share_, positions.data(), positions.size() * 4);
    upload_mask(mask_share_, open, net_block_[0]->input_dtypes[2]);
    const std::vector<bm_shape_t> shapes = {shape_of({1, run, hidden_size_}), shape_of({1, run}),
                                            shape_of({1, 1, run, run})};
    int cur = 0;
    for (int l = 0; l < NUM_LAYERS; ++l, cur = 1 - cur) {
      launch(net_block_[l], {hidden_[cur], pos_share_, mask_share_}, {hidden_[1 - cur], k_out_, v_out_},
             shapes);
      dev_.copy(past_key_[l], 0, k_out_, 0, size_t(run) * kv_row_);
      dev_.copy(past_value_[l], 0, v_out_, 0, size_t(run) * kv_row_);
    }
  }

  int forward_unshare(const std::vector<int>& tokens) {
    require_model();
    const int u = int(tokens.size()), S = MAX_SHARE_LENGTH, U = MAX_UNSHARE_LENGTH;
    if (u <= 0 || u > U || share_length + u > SEQLEN)
      fail("a question of " + std::to_string(u) + " tokens does not fit " + std::to_string(U) +
           " after the " + std::to_string(share_length) + "-token prefix");
    std::vector<int> ids(U, 0), positions(U, 0);
    std::copy(tokens.begin(), tokens.end(), ids.begin());
    dev_.upload(ids_unshare_, ids.data(), ids.size() * 4);
    launch(net_embed_unshare_, {ids_unshare_}, {hidden_[0]});
    // Row i: the prefix's real columns [0, n) and the question's [S, S+i].
    std::vector<uint8_t> open(size_t(U) * (S + U), 0);
    for (int i = 0; i < u; ++i) {
      positions[i] = share_length + i;
      for (int j = 0; j < share_length; ++j) open[size_t(i) * (S + U) + j] = 1;
      for (int j = 0; j <= i; ++j) open[size_t(i) * (S + U) + S + j] = 1;
    }
    dev_.upload(pos_unshare_, positions.data(), positions.size() * 4);
    upload_mask(mask_unshare_, open, net_block_unshare_[0]->input_dtypes[2]);
    const bm_shape_t history = net_block_unshare_[0]->stages[0].input_shapes[3];
    int cur = 0;
    for (int l = 0; l < NUM_LAYERS; ++l, cur = 1 - cur) {
      const bm_net_info_t* net = net_block_unshare_[l];
      // The history inputs read the first S rows of the cache where it lies.
      launch(net, {hidden_[cur], pos_unshare_, mask_unshare_, past_key_[l], past_value_[l]},
             {hidden_[1 - cur], k_out_, v_out_},
             {net->stages[0].input_shapes[0], net->stages[0].input_shapes[1],
              net->stages[0].input_shapes[2], history, history});
      dev_.copy(past_key_[l], size_t(share_length) * kv_row_, k_out_, 0, size_t(u) * kv_row_);
      dev_.copy(past_value_[l], size_t(share_length) * kv_row_, v_out_, 0, size_t(u) * kv_row_);
    }
    dev_.copy(lm_in_, 0, hidden_[cur], size_t(u - 1) * hidden_row_, hidden_row_);
    unshare_tokens.assign(std::max(SEQLEN - S, u + 1), 0);
    std::copy(tokens.begin(), tokens.end(), unshare_tokens.begin());
    unshare_length = u;
    return next_token();
  }

  int forward_next() {
    require_model();
    if (unshare_length <= 0) fail("forward_next before forward_unshare");
    const int position = share_length + unshare_length - 1;  // of the token fed now
    if (position >= SEQLEN || unshare_length >= int(unshare_tokens.size()))
      fail("the answer reached the model's sequence length " + std::to_string(SEQLEN));
    const int token = unshare_tokens[unshare_length - 1];
    dev_.upload(ids_one_, &token, 4);
    launch(net_embed_cache_, {ids_one_}, {embed_one_});
    dev_.copy(x_[0], 0, embed_one_, 0, hidden_row_);
    dev_.upload(pos_one_, &position, 4);
    // Open on the history [0, position) and on the last slot, the token itself.
    std::vector<uint8_t> open(SEQLEN + 1, 0);
    std::fill(open.begin(), open.begin() + position, uint8_t(1));
    open[SEQLEN] = 1;
    upload_mask(mask_one_, open, net_block_cache_[0]->input_dtypes[2]);
    int cur = 0;
    for (int l = 0; l < NUM_LAYERS; ++l, cur = 1 - cur) {
      const bm_device_mem_t& out = l == NUM_LAYERS - 1 ? lm_in_ : x_[1 - cur];
      launch(net_block_cache_[l], {x_[cur], pos_one_, mask_one_, past_key_[l], past_value_[l]},
             {out, k_row_, v_row_});
      dev_.copy(past_key_[l], size_t(position) * kv_row_, k_row_, 0, kv_row_);
      dev_.copy(past_value_[l], size_t(position) * kv_row_, v_row_, 0, kv_row_);
    }
    return next_token();
  }

  // Not in the demo: bmrt_trace of the current model (checks every weight on the device against
  // its SHA-256 and prints the coeff addresses; the tests read them).
  void trace() {
    require_model();
    bmrt_trace(model_.bmrt);
  }

 private:
  llmtpu::Device dev_;
  Model model_;
  std::vector<Model> retired_;
  std::mt19937 rng_;
  const bm_net_info_t *net_embed_ = nullptr, *net_embed_unshare_ = nullptr, *net_embed_cache_ = nullptr;
  const bm_net_info_t *net_lm_ = nullptr, *net_greedy_ = nullptr, *net_sample_ = nullptr;
  std::vector<const bm_net_info_t*> net_block_, net_block_unshare_, net_block_cache_;
  int hidden_size_ = 0;
  size_t hidden_row_ = 0, kv_row_ = 0, kv_bytes_ = 0;
  std::vector<bm_device_mem_t> past_key_, past_value_;
  bm_device_mem_t ids_share_{}, ids_unshare_{}, ids_one_{}, pos_share_{}, pos_unshare_{}, pos_one_{};
  bm_device_mem_t mask_share_{}, mask_unshare_{}, mask_one_{}, hidden_[2]{}, x_[2]{}, embed_one_{};
  bm_device_mem_t k_out_{}, v_out_{}, k_row_{}, v_row_{}, lm_in_{}, logits_{}, greedy_out_{};
  bm_device_mem_t sample_ids_{}, sample_args_[3]{}, probs_{}, candidates_{};

  void require_model() const {
    if (!model_.bmrt) fail("no model: call init(devices, path) first");
  }

  void launch(const bm_net_info_t* net, const std::vector<bm_device_mem_t>& ins,
              const std::vector<bm_device_mem_t>& outs, const std::vector<bm_shape_t>& shapes = {}) {
    llmtpu::launch(model_.bmrt, dev_.handle(), net, ins, outs, shapes);
  }

  bm_device_mem_t own(size_t bytes) {
    model_.owned.push_back(dev_.zeros(bytes));
    return model_.owned.back();
  }

  void load(Model& m, const std::string& path) {
    llmtpu::load_model(dev_, m, path, is_decrypt, memory_prealloc);
  }

  void release(Model& m, bool keep_weights) { llmtpu::release_model(dev_, m, keep_weights); }

  const bm_net_info_t* net(const std::string& name) {
    const bm_net_info_t* info = bmrt_get_network_info(model_.bmrt, name.c_str());
    if (!info)
      fail("the model has no net " + name + ": not a share-cache bmodel (share_cache_demo's compile.sh)");
    return info;
  }

  // By the list of names: asking bmrt_get_network_info for a missing net makes libbmrt log.
  bool has_net(const std::string& name) {
    const char** names = nullptr;
    bmrt_get_network_names(model_.bmrt, &names);
    bool found = false;
    for (int i = 0; names && i < bmrt_get_network_number(model_.bmrt); ++i) found |= name == names[i];
    std::free(names);
    return found;
  }

  void find_nets() {
    net_embed_ = net("embedding");
    net_embed_unshare_ = net("embedding_unshare");
    net_embed_cache_ = net("embedding_cache");
    net_lm_ = net("lm_head");
    net_greedy_ = net("greedy_head");
    net_sample_ = net("penalty_sample_head");
    net_block_.clear(), net_block_unshare_.clear(), net_block_cache_.clear();
    for (int l = 0; has_net("block_cache_" + std::to_string(l)); ++l) {
      net_block_.push_back(net("block_" + std::to_string(l)));
      net_block_unshare_.push_back(net("block_unshare_" + std::to_string(l)));
      net_block_cache_.push_back(net("block_cache_" + std::to_string(l)));
    }
    if (net_block_.empty()) fail("the model has no block_cache_0");
    NUM_LAYERS = int(net_block_.size());
    const bm_net_info_t* cache = net_block_cache_[0];
    MAX_SHARE_LENGTH = net_block_[0]->stages[0].input_shapes[0].dims[1];
    MAX_UNSHARE_LENGTH = net_block_unshare_[0]->stages[0].input_shapes[0].dims[1];
    SEQLEN = cache->stages[0].input_shapes[3].dims[1];
    hidden_size_ = cache->stages[0].input_shapes[0].dims[2];
    hidden_row_ = cache->max_input_bytes[0];
    kv_row_ = cache->max_output_bytes[1];
    kv_bytes_ = cache->max_input_bytes[3];
  }

  void allocate_buffers() {
    const size_t S = MAX_SHARE_LENGTH, U = MAX_UNSHARE_LENGTH, rows = std::max(S, U);
    ids_share_ = own(S * 4), ids_unshare_ = own(U * 4), ids_one_ = own(4);
    pos_share_ = own(S * 4), pos_unshare_ = own(U * 4), pos_one_ = own(4);
    mask_share_ = own(net_block_[0]->max_input_bytes[2]);
    mask_unshare_ = own(net_block_unshare_[0]->max_input_bytes[2]);
    mask_one_ = own(net_block_cache_[0]->max_input_bytes[2]);
    for (auto& h : hidden_) h = own(rows * hidden_row_);
    for (auto& x : x_) x = own(hidden_row_);
    embed_one_ = own(net_embed_cache_->max_output_bytes[0]);
    k_out_ = own(rows * kv_row_), v_out_ = own(rows * kv_row_);
    k_row_ = own(kv_row_), v_row_ = own(kv_row_);
    lm_in_ = own(net_lm_->max_input_bytes[0]);
    logits_ = own(net_lm_->max_output_bytes[0]);
    greedy_out_ = own(net_greedy_->max_output_bytes[0]);
    sample_ids_ = own(net_sample_->max_input_bytes[1]);
    for (int i = 0; i < 3; ++i) sample_args_[i] = own(net_sample_->max_input_bytes[2 + i]);
    probs_ = own(net_sample_->max_output_bytes[0]);
    candidates_ = own(net_sample_->max_output_bytes[1]);
  }

  // io_alone_reuse: the previous model's cache (the prefix's k/v) becomes this model's history.
  void prepare_cache() {
    std::vector<bm_device_mem_t> old_key, old_value;
    if (io_alone_reuse && !past_key_.empty()) {
      if (int(past_key_.size()) != NUM_LAYERS || past_key_[0].size != kv_bytes_)
        fail("io_alone_reuse: the previous model's KV cache does not fit this one");
      old_key.swap(past_key_), old_value.swap(past_value_);
    } else {
      free_cache();
      share_length = unshare_length = 0;
    }
    for (int l = 0; l < NUM_LAYERS; ++l) {
      past_key_.push_back(dev_.zeros(kv_bytes_));
      past_value_.push_back(dev_.zeros(kv_bytes_));
      if (!old_key.empty()) {
        dev_.copy(past_key_[l], 0, old_key[l], 0, kv_bytes_);
        dev_.copy(past_value_[l], 0, old_value[l], 0, kv_bytes_);
      }
    }
    for (auto* side : {&old_key, &old_value})
      for (auto& mem : *side) dev_.free(mem);
  }

  void free_cache() {
    for (auto* side : {&past_key_, &past_value_}) {
      for (auto& mem : *side) dev_.free(mem);
      side->clear();
    }
  }

  // An additive mask in the net's own dtype: 0 where open, -10000 where closed.
  void upload_mask(const bm_device_mem_t& dst, const std::vector<uint8_t>& open, int dtype) {
    std::vector<uint8_t> bytes;
    auto put = [&](const void* p, size_t n) {
      bytes.insert(bytes.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    };
    const float closed_f32 = -10000.0f, open_f32 = 0.0f;
    const uint16_t closed_bf16 = 0xC61C, closed_f16 = 0xF0E2, open_16 = 0;
    for (uint8_t o : open) {
      switch (dtype) {
        case BM_FLOAT32: put(o ? &open_f32 : &closed_f32, 4); break;
        case BM_BFLOAT16: put(o ? &open_16 : &closed_bf16, 2); break;
        case BM_FLOAT16: put(o ? &open_16 : &closed_f16, 2); break;
        default: fail("an attention mask of dtype " + std::to_string(dtype) + " (not f32, bf16, f16)");
      }
    }
    dev_.upload(dst, bytes.data(), bytes.size());
  }

  // lm_head on lm_in_, then the head generation_mode names; appends the token.
  int next_token() {
    launch(net_lm_, {lm_in_}, {logits_});
    int token = 0;
    if (generation_mode == "greedy") {
      launch(net_greedy_, {logits_}, {greedy_out_});
      dev_.download(&token, greedy_out_, 4);
    } else if (generation_mode == "penalty_sample") {
      token = penalty_sample();
    } else {
      fail("generation_mode is " + generation_mode + "; use greedy or penalty_sample");
    }
    unshare_tokens[unshare_length++] = token;
    return token;
  }

  // penalty_sample_head over the last repeat_last_n tokens (padded with the latest one), then a
  // draw among its candidates by their probabilities.
  int penalty_sample() {
    const int seq = net_sample_->stages[0].input_shapes[1].dims[1];
    const int last = std::max(1, std::min({repeat_last_n, unshare_length, seq}));
    std::vector<int> recent(seq, unshare_tokens[unshare_length - 1]);
    std::copy(unshare_tokens.begin() + unshare_length - last, unshare_tokens.begin() + unshare_length,
              recent.begin());
    dev_.upload(sample_ids_, recent.data(), recent.size() * 4);
    const float args[3] = {top_p, temperature, repeat_penalty};
    for (int i = 0; i < 3; ++i) dev_.upload(sample_args_[i], &args[i], 4);
    launch(net_sample_, {logits_, sample_ids_, sample_args_[0], sample_args_[1], sample_args_[2]},
           {probs_, candidates_});
    const int n = net_sample_->stages[0].output_shapes[0].dims[1];
    std::vector<float> probs(n);
    std::vector<int> candidates(n);
    dev_.download(probs.data(), probs_, n * 4);
    dev_.download(candidates.data(), candidates_, n * 4);
    std::discrete_distribution<int> pick(probs.begin(), probs.end());
    return candidates[pick(rng_)];
  }
};

PYBIND11_MODULE(chat, m) {
  m.doc() = "LLM-TPU share_cache_demo's chat.Qwen on bmcrypt-encrypted bmodels";
  py::class_<Qwen>(m, "Qwen")
      .def(py::init<>())
      .def("init", &Qwen::init, py::arg("devices"), py::arg("model_path"))
      .def("encrypt_bmodel", &Qwen::encrypt_bmodel)
      .def("set_key_file", &Qwen::set_key_file)
      .def("forward_first", &Qwen::forward_first)
      .def("forward_unshare", &Qwen::forward_unshare)
      .def("forward_next", &Qwen::forward_next)
      .def("free_device", &Qwen::free_device)
      .def("deinit", &Qwen::deinit)
      .def("empty_kvcache", &Qwen::empty_kvcache)
      .def("trace", &Qwen::trace)
      .def_readwrite("SEQLEN", &Qwen::SEQLEN)
      .def_readwrite("MAX_SHARE_LENGTH", &Qwen::MAX_SHARE_LENGTH)
      .def_readwrite("share_length", &Qwen::share_length)
      .def_readwrite("unshare_length", &Qwen::unshare_length)
      .def_readwrite("unshare_tokens", &Qwen::unshare_tokens)
      .def_readwrite("temperature", &Qwen::temperature)
      .def_readwrite("top_p", &Qwen::top_p)
      .def_readwrite("repeat_penalty", &Qwen::repeat_penalty)
      .def_readwrite("repeat_last_n", &Qwen::repeat_last_n)
      .def_readwrite("max_new_tokens", &Qwen::max_new_tokens)
      .def_readwrite("generation_mode", &Qwen::generation_mode)
      .def_readwrite("prompt_mode", &Qwen::prompt_mode)
      .def_readwrite("memory_prealloc", &Qwen::memory_prealloc)
      .def_readwrite("io_alone_reuse", &Qwen::io_alone_reuse)
      .def_readwrite("is_decrypt", &Qwen::is_decrypt);
}
