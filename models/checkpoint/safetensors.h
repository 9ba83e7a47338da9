#pragma once
// The safetensors format (https://github.com/huggingface/safetensors), read
// and written without the Rust library:
//
//   [u64 little-endian N][N bytes of JSON header][raw little-endian data]
//
// header = {name: {"dtype": "F32", "shape": [2, 3],
//                  "data_offsets": [begin, end]}, "__metadata__": {k: v}}
// with offsets relative to the first byte after the header.
//
// Reading maps the file and validates the whole header at open, so a corrupt
// or truncated file fails there with one clear message instead of later, in
// the middle of loading a model.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace peftcpp::models {

/// One tensor entry of a safetensors header.
struct SafetensorsTensorInfo {
  /// The format's dtype name ("F32", "BF16", "F8_E4M3", ...).
  std::string dtype;
  /// The same dtype as a torch scalar type.
  at::ScalarType scalar_type = at::kFloat;
  /// Shape; empty for a scalar.
  std::vector<int64_t> shape;
  /// Byte range [begin, end) relative to the start of the data region.
  uint64_t begin = 0;
  /// End of the byte range (exclusive).
  uint64_t end = 0;
};

/// A read-only, memory-mapped safetensors file. Always owned by a shared_ptr:
/// tensors returned by tensor() keep the mapping alive after the last handle
/// to the file is gone.
class SafetensorsFile : public std::enable_shared_from_this<SafetensorsFile> {
 public:
  /// Maps `path` and validates its header (dtypes, shapes, offsets within
  /// the file, sizes matching the shapes, no overlaps). Throws
  /// std::runtime_error naming the file and what is wrong.
  static std::shared_ptr<SafetensorsFile> open(
      const std::filesystem::path& path);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  /// The file this was opened from.
  const std::filesystem::path& path() const { return path_; }

  /// Tensor names in file order (ascending data offset, ties by name).
  const std::vector<std::string>& keys() const { return keys_; }

  /// Number of tensors.
  size_t size() const { return keys_.size(); }

  /// Whether the file holds a tensor called `name`.
  bool contains(const std::string& name) const;

  /// Header entry of `name`; std::out_of_range listing some names if absent.
  const SafetensorsTensorInfo& info(const std::string& name) const;

  /// The "__metadata__" map (empty when the file has none).
  const std::map<std::string, std::string>& metadata() const {
    return metadata_;
  }

  /// The tensor `name` on the CPU. Zero-copy over the mapping when its data
  /// is aligned for its dtype (always the case for files written by the
  /// Python library or by save_safetensors), else a copy. The mapping is
  /// private copy-on-write: writing to a zero-copy tensor never changes the
  /// file, but later tensor(name) calls on this handle see the change.
  /// std::out_of_range listing some names if absent.
  at::Tensor tensor(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  void parse_header(uint64_t header_len);

  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_ = nullptr;  // first byte after the header
  uint64_t data_size_ = 0;
  std::vector<std::string> keys_;
  std::unordered_map<std::string, SafetensorsTensorInfo> infos_;
  std::map<std::string, std::string> metadata_;
};

/// The safetensors dtype name of `type` ("F32", ...); std::invalid_argument
/// for types the format cannot hold (complex, quantized, ...).
std::string safetensors_dtype_name(at::ScalarType type);

/// Writes `tensors` (any device, dtype the format knows, any layout of
/// strides; copied to contiguous CPU one at a time) and `metadata` to `path`
/// atomically, byte for byte as the Python library would (data ordered by
/// descending dtype alignment, then name; header padded with spaces to a
/// multiple of 8), so every tensor is aligned for zero-copy reading. Duplicate
/// or reserved ("__metadata__") names and undefined or non-strided tensors are
/// std::invalid_argument.
void save_safetensors(
    const std::filesystem::path& path,
    const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata = {});

}  // namespace peftcpp::models
