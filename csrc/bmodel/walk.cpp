#include "walk.h"

#include <cstring>
#include <string>
#include <unordered_map>

#include "error.h"

namespace bmcrypt {
namespace {

// schemas/bmodel.fbs in the notation of _walk.py's SCHEMA, field order = field id: a scalar (u8
// i32 u32 u64 f32, "=default"), a struct (Binary, RelEntry), "string", a table name, "[T]" a
// vector; a trailing "!" marks (required). tests/test_verifier_parity.py checks that this table
// and _walk.SCHEMA are the same.
struct FieldSpec {
  const char* name;
  const char* type;
};
struct TableSpec {
  const char* name;
  std::vector<FieldSpec> fields;
};

const std::vector<TableSpec>& schema() {
  static const std::vector<TableSpec> tables = {
      {"Shape", {{"dim", "[u64]"}}},
      {"CmdGroup", {{"bdc_num", "u32"}, {"gdma_num", "u32"}, {"binary_bdc", "Binary"},
                    {"binary_gdma", "Binary"}, {"bdc_cmd_byte", "u32"}, {"gdma_cmd_byte", "u32"},
                    {"reloc_entries", "[RelEntry]"}}},
      {"CoreCommands", {{"gdma_tiu_commands", "[CmdGroup]"}, {"sdma_commands", "[Binary]"},
                        {"hau_commands", "[Binary]"}, {"cdma_commands", "[Binary]"}}},
      {"StageIR", {{"ir_info_len", "u32"}, {"height_high", "i32"}, {"height_low", "i32"},
                   {"width_high", "i32"}, {"width_low", "i32"}}},
      {"Location", {{"name", "string!"}, {"offset", "u64"}, {"size", "u64"}}},
      {"CoeffMem", {{"address", "u64"}, {"check_code", "[u8]"}, {"binary_coeff", "Binary"},
                    {"location", "[Location]"}, {"encrypt_mode", "i32"}, {"decrypt_size", "u64"}}},
      {"Tensor", {{"name", "string!"}, {"data_type", "u32"}, {"gmem_stmode", "i32"},
                  {"device_addr", "u64"}, {"size", "u64"}, {"shape", "[Shape]"}, {"mem_type", "u32"},
                  {"scale", "f32=1.0"}, {"cpu_addr", "u32"}, {"pad_h", "u32"}, {"zero_point", "i32"},
                  {"hidden", "i32"}, {"index", "i32"}, {"relentry", "RelEntry"}}},
      {"CpuConst", {{"name", "string"}, {"const_data", "Binary"}, {"check_code", "[u8]"}}},
      {"CpuParam", {{"op_type", "i32"}, {"binary_param", "Binary"}, {"cpu_const", "[CpuConst]"},
                    {"is_custom", "i32"}}},
      {"OutputFrom", {{"indice", "[i32]"}}},
      {"MergeParam", {{"output_from", "[OutputFrom]"}}},
      {"SwitchParam", {{"output_from", "[i32]"}, {"output_branch", "[i32]"}}},
      {"SubNet", {{"subnet_mode", "i32"}, {"cmd_group", "[CmdGroup]"}, {"cpu_param", "[CpuParam]"},
                  {"input_tensor", "[Tensor]"}, {"output_tensor", "[Tensor]"}, {"is_dynamic", "i32"},
                  {"ir_offset", "u32"}, {"ir_len", "u32"}, {"n_dynamic", "i32"},
                  {"h_w_dynamic", "i32"}, {"id", "i32=-1"}, {"next_subnet_ids", "[i32]"},
                  {"merge_param", "MergeParam"}, {"switch_param", "SwitchParam"},
                  {"core_commands", "[CoreCommands]"}, {"run_core", "u32"}}},
      {"NetStatic", {}},
      {"NetDynamic", {}},
      {"NetParameter", {{"input_tensor", "[Tensor]!"}, {"output_tensor", "[Tensor]!"},
                        {"ctx_addr", "u64"}, {"ctx_size", "u64"}, {"coeff_mem", "CoeffMem"},
                        {"is_dynamic", "i32"}, {"n_dynamic", "i32"}, {"h_w_dynamic", "i32"},
                        {"cmd_group", "[CmdGroup]"}, {"net_profile", "Binary"},
                        {"stage_ir", "[StageIR]"}, {"binary_ir", "Binary"}, {"sub_net", "[SubNet]"},
                        {"cpu_mem_size", "u32"}, {"ctx_sizes", "[u64]"}, {"net_stat", "Binary"},
                        {"core_num", "u32"}, {"io_addr", "u64"}, {"io_size", "u64"},
                        {"tensor_loc", "Binary"}, {"dynamic_ctx_addr", "u64"},
                        {"dynamic_coeff_offset", "u64"}, {"dynamic_combined_coeff_offset", "u64"}}},
      {"Cascade", {{"device_id", "u32"}, {"step", "u32"}, {"main_name", "string"}}},
      {"Net", {{"name", "string!"}, {"net_static", "[NetStatic]"}, {"net_dynamic", "[NetDynamic]"},
               {"parameter", "[NetParameter]"}, {"cascade", "Cascade"}, {"addr_mode", "i32"}}},
      {"KernelModule", {{"file_name", "string!"}, {"binary", "Binary!"}, {"mode", "i32"}}},
      {"CpuopModule", {{"file_name", "string!"}, {"binary", "Binary!"}}},
      {"Model", {{"type", "string!"}, {"version", "string!"}, {"time", "string!"},
                 {"chip", "string!"}, {"net", "[Net]!"}, {"neuron_size", "u64"},
                 {"kernel_module", "KernelModule"}, {"device_num", "u32"},
                 {"cpuop_module", "CpuopModule"}, {"bmodel_type", "u32"}, {"lib_backend", "Binary"}}},
  };
  return tables;
}
constexpr const char* kRoot = "Model";

// uoffsets are read as signed by the flatc verifier: anything above is refused.
constexpr uint32_t kMaxOffset = 0x7fffffff;

enum class Shape { scalar, structure, string, table, vector };
// What a vector holds, or what an inline scalar/struct is.
enum class Elem { none, scalar, binary, relentry, table };

struct Field {
  std::string name;
  Shape shape = Shape::scalar;
  Elem elem = Elem::none;  // vectors: their element; structs: which one
  int table = -1;          // tables and vectors of tables: index into the digested schema
  int vector_kind = -1;    // vectors: one id per element type, for the memo of shared vectors
  int64_t size = 4;        // inline bytes in the table (offset fields: 4)
  int64_t align = 4;
  int64_t elem_size = 0;   // vectors of scalars or structs
  bool required = false;
};

struct Table {
  std::string name;
  std::vector<Field> fields;
};

int64_t scalar_size(const std::string& t) {
  if (t == "u8") return 1;
  if (t == "i32" || t == "u32" || t == "f32") return 4;
  if (t == "u64") return 8;
  return 0;
}

// The schema digested once: names resolved to indices, sizes and alignments worked out.
struct Digested {
  std::vector<Table> tables;
  int root = -1;

  Digested() {
    const auto& spec = schema();
    auto index_of = [&](const std::string& name) {
      for (size_t i = 0; i < spec.size(); ++i)
        if (name == spec[i].name) return int(i);
      return -1;
    };
    std::vector<std::string> vector_types;  // ids from 64 on: tables keep 0..63
    for (const TableSpec& t : spec) {
      Table table{t.name, {}};
      for (const FieldSpec& spec_field : t.fields) {
        Field f = digest(spec_field, index_of);
        if (f.shape == Shape::vector) {
          const std::string type = std::string(spec_field.type).substr(0, std::strcspn(spec_field.type, "!"));
          size_t id = 0;
          while (id < vector_types.size() && vector_types[id] != type) ++id;
          if (id == vector_types.size()) vector_types.push_back(type);
          f.vector_kind = 64 + int(id);
        }
        table.fields.push_back(std::move(f));
      }
      tables.push_back(std::move(table));
    }
    root = index_of(kRoot);
  }

  template <class IndexOf>
  static Field digest(const FieldSpec& spec, IndexOf&& index_of) {
    Field f;
    f.name = spec.name;
    std::string type = spec.type;
    if (!type.empty() && type.back() == '!') {
      f.required = true;
      type.pop_back();
    }
    type = type.substr(0, type.find('='));  // defaults matter to decoders, not to the walk
    if (type.front() == '[') {
      f.shape = Shape::vector;
      const std::string elem = type.substr(1, type.size() - 2);
      if (scalar_size(elem)) {
        f.elem = Elem::scalar;
        f.elem_size = scalar_size(elem);
      } else if (elem == "Binary" || elem == "RelEntry") {
        f.elem = elem == "Binary" ? Elem::binary : Elem::relentry;
        f.elem_size = elem == "Binary" ? 16 : 12;
      } else {
        f.elem = Elem::table;
        f.table = index_of(elem);
      }
    } else if (scalar_size(type)) {
      f.shape = Shape::scalar;
      f.size = f.align = scalar_size(type);
    } else if (type == "Binary" || type == "RelEntry") {
      f.shape = Shape::structure;
      f.elem = type == "Binary" ? Elem::binary : Elem::relentry;
      f.size = type == "Binary" ? 16 : 12;
      f.align = type == "Binary" ? 8 : 4;
    } else if (type == "string") {
      f.shape = Shape::string;
    } else {
      f.shape = Shape::table;
      f.table = index_of(type);
    }
    return f;
  }
};

const Digested& digested() {
  static const Digested d;
  return d;
}

// Where the walk is, for the message: "Model.net[0].parameter[1].coeff_mem".
struct PathPart {
  const char* name;  // a field name, or nullptr for a vector index
  int64_t index;
};

class Walker {
 public:
  explicit Walker(ByteView buf)
      : buf_(buf.data), n_(int64_t(buf.size)), max_cost_(uint64_t(buf.size) + kMaxWalkExtraCost) {}

  std::vector<BinaryRef> root() {
    const Digested& d = digested();
    if (n_ < 8) damaged("flatbuffer is too small");
    const int64_t off = int64_t(load_le32(buf_));
    path_.push_back({kRoot, 0});
    if (off == 0 || off > kMaxOffset) damaged("root has an invalid offset");
    table(off, d.root);
    return std::move(binaries_);
  }

 private:
  [[noreturn]] void damaged(const std::string& what) const {
    throw Error(Errc::corrupt, "metadata is damaged: " + what);
  }

  std::string path() const {
    std::string out;
    for (const PathPart& p : path_) {
      if (p.name) {
        if (!out.empty()) out += '.';
        out += p.name;
      } else {
        out += '[' + std::to_string(p.index) + ']';
      }
    }
    return out;
  }

  // The message names the current path (plus `suffix`), built only when a rule is broken.
  void need(int64_t pos, int64_t size, int64_t align, const char* suffix = "") const {
    if (pos < 0 || size < 0 || pos + size > n_) damaged(path() + suffix + " points outside the flatbuffer");
    if (pos % align) damaged(path() + suffix + " is misaligned");
  }
  int64_t u32(int64_t pos) const {
    need(pos, 4, 4);
    return int64_t(load_le32(buf_ + pos));
  }
  int64_t u16(int64_t pos) const { return int64_t(buf_[pos]) | int64_t(buf_[pos + 1]) << 8; }

  void charge(uint64_t amount) {
    cost_ += amount;
    if (cost_ > max_cost_) damaged("too many objects (at " + path() + ")");
  }

  // A shared table or vector is walked once and charged what its first walk cost every time.
  bool seen(int64_t pos, int kind) {
    const auto hit = seen_.find(key(pos, kind));
    if (hit == seen_.end()) return false;
    charge(hit->second);
    return true;
  }
  static uint64_t key(int64_t pos, int kind) { return uint64_t(pos) << 8 | uint64_t(kind); }

  void table(int64_t pos, int index) {
    if (seen(pos, index)) return;
    const uint64_t before = cost_;
    charge(1);
    const Table& t = digested().tables[size_t(index)];
    need(pos, 4, 4);
    const int64_t vt = pos - int64_t(int32_t(load_le32(buf_ + pos)));
    need(vt, 4, 2, " vtable");
    const int64_t vt_len = u16(vt), tbl_len = u16(vt + 2);
    if (vt_len < 4 || vt_len % 2 || tbl_len < 4) damaged(path() + " has a bad vtable");
    need(vt, vt_len, 2, " vtable");
    need(pos, tbl_len, 4);
    const int64_t slots = (vt_len - 4) / 2;
    for (size_t i = 0; i < t.fields.size(); ++i) {
      const Field& f = t.fields[i];
      const int64_t voff = int64_t(i) < slots ? u16(vt + 4 + 2 * int64_t(i)) : 0;
      if (voff == 0) {
        if (f.required) damaged("required field " + path() + "." + f.name + " is missing");
        continue;
      }
      // The table lies inside the buffer, so a field inside the table does too.
      if (voff + f.size > tbl_len) damaged(path() + "." + f.name + " lies outside its table");
      const int64_t fpos = pos + voff;
      if (fpos % f.align) damaged(path() + "." + f.name + " is misaligned");
      if (f.shape == Shape::scalar) continue;
      if (f.shape == Shape::structure) {
        if (f.elem == Elem::binary) binaries_.push_back({load_le64(buf_ + fpos), load_le64(buf_ + fpos + 8)});
        continue;
      }
      const int64_t off = int64_t(load_le32(buf_ + fpos));
      if (off == 0 || off > kMaxOffset) damaged(path() + "." + f.name + " has an invalid offset");
      path_.push_back({f.name.c_str(), 0});
      if (f.shape == Shape::string) string(fpos + off);
      else if (f.shape == Shape::table) table(fpos + off, f.table);
      else vector(fpos + off, f);
      path_.pop_back();
    }
    seen_[key(pos, index)] = cost_ - before;
  }

  void string(int64_t pos) {
    const int64_t length = u32(pos);
    need(pos + 4, length + 1, 1);
    if (buf_[pos + 4 + length] != 0) damaged(path() + " is not terminated");
    charge(1 + uint64_t(length) / 64);
  }

  void vector(int64_t pos, const Field& f) {
    const int kind = f.vector_kind;
    if (seen(pos, kind)) return;
    const uint64_t before = cost_;
    const int64_t count = u32(pos);
    const int64_t start = pos + 4;
    if (f.elem == Elem::scalar) {
      need(start, count * f.elem_size, 1);
      charge(1 + uint64_t(count) / 8);
    } else if (f.elem != Elem::table) {
      need(start, count * f.elem_size, 1);
      charge(1 + uint64_t(count));
      if (f.elem == Elem::binary)
        for (int64_t i = 0; i < count; ++i)
          binaries_.push_back({load_le64(buf_ + start + 16 * i), load_le64(buf_ + start + 16 * i + 8)});
    } else {
      need(start, count * 4, 4);
      charge(1);
      for (int64_t i = 0; i < count; ++i) {
        const int64_t off = int64_t(load_le32(buf_ + start + 4 * i));
        path_.push_back({nullptr, i});
        if (off == 0 || off > kMaxOffset) damaged(path() + " has an invalid offset");
        table(start + 4 * i + off, f.table);
        path_.pop_back();
      }
    }
    seen_[key(pos, kind)] = cost_ - before;
  }

  const uint8_t* buf_;
  int64_t n_;
  uint64_t cost_ = 0;
  uint64_t max_cost_;
  std::unordered_map<uint64_t, uint64_t> seen_;
  std::vector<PathPart> path_;
  std::vector<BinaryRef> binaries_;
};

}  // namespace

std::vector<BinaryRef> walk_flatbuffer(ByteView buffer) { return Walker(buffer).root(); }

}  // namespace bmcrypt
