#pragma once
// GGUF files (llama.cpp's model format, https://github.com/ggml-org/ggml/
// blob/master/docs/gguf.md), read without ggml:
//
//   "GGUF" u32 version  u64 n_tensors  u64 n_kv
//   n_kv x     { string key, u32 value_type, value }
//   n_tensors x{ string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type,
//                u64 offset }
//   padding to general.alignment (default 32)
//   tensor data (each tensor at data_start + offset)
//
// with strings as u64 length + bytes and arrays as u32 element type + u64
// count + elements. Little-endian only (big-endian GGUF files exist but are
// rare and refused by the magic check of llama.cpp too).
//
// Opening maps the file and validates the whole header (metadata, tensor
// table, every tensor's byte range), so a corrupt or truncated file fails
// there with one clear message. Torch-free: the tokenizer reads its
// vocabulary through this without linking LibTorch.

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace peftcpp::gguf {

/// ggml's tensor types (ggml.h `enum ggml_type`), with their ids as stored in
/// the file. Ids 4, 5 and 31-33, 36-38 were removed from ggml and are
/// unknown here.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
  kNVFP4 = 40,
  kQ1_0 = 41,
};

/// ggml's name of `type` ("Q4_1", "Q6_K", ...); "type 123" when unknown.
std::string ggml_type_name(GgmlType type);

/// Block geometry of a ggml type: `block_size` elements are stored in
/// `type_size` bytes.
struct GgmlTypeTraits {
  /// Elements per block (1 for the plain float and integer types).
  int64_t block_size = 0;
  /// Bytes per block.
  int64_t type_size = 0;
};

/// Block geometry of `type`; std::nullopt for an id ggml does not know.
std::optional<GgmlTypeTraits> ggml_type_traits(GgmlType type);

/// One entry of the tensor table.
struct TensorInfo {
  /// llama.cpp's name ("blk.0.attn_q.weight").
  std::string name;
  /// ggml order: ne[0] (the contiguous dimension) first.
  std::vector<int64_t> shape;
  /// Storage type.
  GgmlType type = GgmlType::kF32;
  /// Byte offset from the start of the tensor data section.
  uint64_t offset = 0;
  /// Bytes the tensor occupies (blocks * type size).
  uint64_t nbytes = 0;
  /// Product of the shape (1 for a 0-d tensor).
  int64_t num_elements() const;
};

/// A read-only, memory-mapped GGUF file (v2 or v3). Movable, not copyable;
/// pointers from tensor_data() live as long as the object that gave them.
class GgufFile {
 public:
  /// Opens (memory-maps) and parses a GGUF v2/v3 file. Throws
  /// std::runtime_error naming the file: bad magic, unsupported version,
  /// truncated header/metadata/tensor table, tensor data past the end of
  /// file, unknown metadata value or tensor type, duplicate names, ...
  static GgufFile open(const std::filesystem::path& path);

  ~GgufFile();
  GgufFile(GgufFile&& other) noexcept;
  GgufFile& operator=(GgufFile&& other) noexcept;
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  /// Format version (2 or 3).
  uint32_t version() const { return version_; }
  /// The file this was opened from.
  const std::filesystem::path& path() const { return path_; }
  /// Byte alignment of the data section (general.alignment, default 32).
  uint64_t alignment() const { return alignment_; }

  /// Every metadata key -> its value as JSON (integers, floats, bools,
  /// strings, nested arrays), as a JSON object (sorted by key).
  const nlohmann::json& metadata() const { return metadata_; }

  /// Whether the metadata holds `key`.
  bool has(std::string_view key) const;
  /// The value of `key`; std::out_of_range naming the key, the file and a
  /// close key when absent.
  const nlohmann::json& get(std::string_view key) const;

  /// A string value; std::out_of_range when absent, std::runtime_error when
  /// the value has another type.
  std::string get_string(std::string_view key) const;
  /// An integer value (any GGUF integer type; uint64 above INT64_MAX is
  /// refused).
  int64_t get_int(std::string_view key) const;
  /// A float value (float32 / float64; integers are accepted too).
  double get_float(std::string_view key) const;
  /// A bool value.
  bool get_bool(std::string_view key) const;
  /// An array of strings ("tokenizer.ggml.tokens", "tokenizer.ggml.merges").
  std::vector<std::string> get_string_array(std::string_view key) const;
  /// An array of integers ("tokenizer.ggml.token_type").
  std::vector<int64_t> get_int_array(std::string_view key) const;
  /// An array of numbers ("tokenizer.ggml.scores").
  std::vector<double> get_float_array(std::string_view key) const;

  /// get_string, or std::nullopt when the key is absent (a present value of
  /// another type still throws).
  std::optional<std::string> find_string(std::string_view key) const;
  /// get_int, or std::nullopt when absent.
  std::optional<int64_t> find_int(std::string_view key) const;
  /// get_float, or std::nullopt when absent.
  std::optional<double> find_float(std::string_view key) const;
  /// get_bool, or std::nullopt when absent.
  std::optional<bool> find_bool(std::string_view key) const;

  /// The tensor table in file order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  /// The entry called `name`; nullptr when absent.
  const TensorInfo* find_tensor(std::string_view name) const;
  /// The tensor's bytes in the mapped file (info.nbytes of them). `info`
  /// must come from this file's tensors().
  const uint8_t* tensor_data(const TensorInfo& info) const;

 private:
  GgufFile() = default;
  void parse();
  std::string where() const;

  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_start_ = 0;
  nlohmann::json metadata_ = nlohmann::json::object();
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace peftcpp::gguf
