#include "models/gguf/gguf_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <utility>

#include "common/error.h"

// The format is little-endian and values are read by memcpy.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "GGUF reading assumes a little-endian host");

namespace peftcpp::gguf {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32

// gguf.h `enum gguf_type`.
enum ValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// Nested arrays are legal but real files never go deeper than one level; a
// deep nesting is a corrupt file, and recursion must stay bounded.
constexpr int kMaxArrayDepth = 8;
// ggml tensors have at most 4 dimensions (GGML_MAX_DIMS).
constexpr uint32_t kMaxDims = 4;

struct TypeEntry {
  GgmlType type;
  const char* name;
  int64_t block_size;
  int64_t type_size;
};

// ggml's type table (ggml.c `type_traits`, gguf-py GGML_QUANT_SIZES); QK_K =
// 256 for the k-quants and the i-quants.
constexpr TypeEntry kTypes[] = {
    {GgmlType::kF32, "F32", 1, 4},
    {GgmlType::kF16, "F16", 1, 2},
    {GgmlType::kQ4_0, "Q4_0", 32, 2 + 16},
    {GgmlType::kQ4_1, "Q4_1", 32, 2 + 2 + 16},
    {GgmlType::kQ5_0, "Q5_0", 32, 2 + 4 + 16},
    {GgmlType::kQ5_1, "Q5_1", 32, 2 + 2 + 4 + 16},
    {GgmlType::kQ8_0, "Q8_0", 32, 2 + 32},
    {GgmlType::kQ8_1, "Q8_1", 32, 4 + 4 + 32},
    {GgmlType::kQ2_K, "Q2_K", 256, 2 + 2 + 256 / 16 + 256 / 4},
    {GgmlType::kQ3_K, "Q3_K", 256, 2 + 256 / 4 + 256 / 8 + 12},
    {GgmlType::kQ4_K, "Q4_K", 256, 2 + 2 + 256 / 2 + 12},
    {GgmlType::kQ5_K, "Q5_K", 256, 2 + 2 + 256 / 2 + 256 / 8 + 12},
    {GgmlType::kQ6_K, "Q6_K", 256, 2 + 256 / 2 + 256 / 4 + 256 / 16},
    {GgmlType::kQ8_K, "Q8_K", 256, 4 + 256 + 256 / 8},
    {GgmlType::kIQ2_XXS, "IQ2_XXS", 256, 2 + 256 / 4},
    {GgmlType::kIQ2_XS, "IQ2_XS", 256, 2 + 256 / 4 + 256 / 32},
    {GgmlType::kIQ3_XXS, "IQ3_XXS", 256, 2 + 256 / 4 + 256 / 8},
    {GgmlType::kIQ1_S, "IQ1_S", 256, 2 + 256 / 8 + 256 / 16},
    {GgmlType::kIQ4_NL, "IQ4_NL", 32, 2 + 16},
    {GgmlType::kIQ3_S, "IQ3_S", 256, 2 + 256 / 4 + 256 / 8 + 256 / 32 + 4},
    {GgmlType::kIQ2_S, "IQ2_S", 256, 2 + 256 / 4 + 256 / 16},
    {GgmlType::kIQ4_XS, "IQ4_XS", 256, 2 + 2 + 256 / 2 + 256 / 64},
    {GgmlType::kI8, "I8", 1, 1},
    {GgmlType::kI16, "I16", 1, 2},
    {GgmlType::kI32, "I32", 1, 4},
    {GgmlType::kI64, "I64", 1, 8},
    {GgmlType::kF64, "F64", 1, 8},
    {GgmlType::kIQ1_M, "IQ1_M", 256, 256 / 8 + 256 / 16 + 256 / 32},
    {GgmlType::kBF16, "BF16", 1, 2},
    {GgmlType::kTQ1_0, "TQ1_0", 256, 2 + 4 * 13},
    {GgmlType::kTQ2_0, "TQ2_0", 256, 2 + 64},
    {GgmlType::kMXFP4, "MXFP4", 32, 1 + 16},
    {GgmlType::kNVFP4, "NVFP4", 64, 4 + 32},
    {GgmlType::kQ1_0, "Q1_0", 128, 2 + 16},
};

const TypeEntry* find_type(GgmlType type) {
  for (const auto& t : kTypes) {
    if (t.type == type) {
      return &t;
    }
  }
  return nullptr;
}

const char* value_type_name(uint32_t type) {
  static const char* const kNames[] = {
      "uint8", "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
      "bool",  "string", "array",  "uint64", "int64",  "float64"};
  return type < std::size(kNames) ? kNames[type] : "unknown";
}

// Bounds-checked little-endian reads over the mapped bytes; every failure
// names the section being read, so a truncated file says where it ends.
class Reader {
 public:
  Reader(const uint8_t* data, uint64_t size, std::string where)
      : data_(data), size_(size), where_(std::move(where)) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  const std::string& where() const { return where_; }

  void need(uint64_t n, const std::string& what) const {
    if (n > size_ - pos_) {
      throw std::runtime_error(error_message(
          where_,
          std::to_string(n) + " bytes for " + what + " at offset " +
              std::to_string(pos_),
          "only " + std::to_string(size_ - pos_) + " bytes left (file size " +
              std::to_string(size_) + ")",
          "the file is truncated"));
    }
  }

  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const std::string& what) {
    const auto n = read<uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string where_;
};

// Smallest encoded size of one value of `type`, to refuse an array count a
// corrupt file cannot hold before reserving memory for it.
uint64_t min_value_size(uint32_t type) {
  switch (type) {
    case kUint8:
    case kInt8:
    case kBool:
      return 1;
    case kUint16:
    case kInt16:
      return 2;
    case kUint32:
    case kInt32:
    case kFloat32:
      return 4;
    case kArray:
      return 12;
    default:
      return 8;  // string (its length), 64-bit values
  }
}

json read_value(Reader& r, uint32_t type, const std::string& what, int depth) {
  switch (type) {
    case kUint8:
      return r.read<uint8_t>(what);
    case kInt8:
      return r.read<int8_t>(what);
    case kUint16:
      return r.read<uint16_t>(what);
    case kInt16:
      return r.read<int16_t>(what);
    case kUint32:
      return r.read<uint32_t>(what);
    case kInt32:
      return r.read<int32_t>(what);
    case kFloat32:
      return static_cast<double>(r.read<float>(what));
    case kBool:
      return r.read<uint8_t>(what) != 0;
    case kString:
      return r.read_string(what);
    case kUint64:
      return r.read<uint64_t>(what);
    case kInt64:
      return r.read<int64_t>(what);
    case kFloat64:
      return r.read<double>(what);
    case kArray: {
      if (depth >= kMaxArrayDepth) {
        throw std::runtime_error(error_message(
            r.where(),
            "arrays nested at most " + std::to_string(kMaxArrayDepth) +
                " deep in " + what,
            "deeper nesting", "the metadata is corrupt"));
      }
      const auto elem_type = r.read<uint32_t>(what);
      const auto count = r.read<uint64_t>(what);
      if (elem_type > kFloat64) {
        throw std::runtime_error(error_message(
            r.where(), "a metadata value type 0-12 for the elements of " + what,
            "type " + std::to_string(elem_type),
            "the metadata is corrupt or from a newer GGUF version"));
      }
      if (count > r.remaining() / min_value_size(elem_type)) {
        throw std::runtime_error(error_message(
            r.where(),
            "an array of at most " +
                std::to_string(r.remaining() / min_value_size(elem_type)) +
                " " + value_type_name(elem_type) + " values for " + what +
                " (the bytes left in the file)",
            std::to_string(count) + " elements", "the file is truncated"));
      }
      json arr = json::array();
      auto& vec = arr.get_ref<json::array_t&>();
      vec.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        vec.push_back(read_value(r, elem_type, what, depth + 1));
      }
      return arr;
    }
    default:
      throw std::runtime_error(error_message(
          r.where(), "a metadata value type 0-12 for " + what,
          "type " + std::to_string(type),
          "the metadata is corrupt or from a newer GGUF version"));
  }
}

}  // namespace

std::string ggml_type_name(GgmlType type) {
  if (const TypeEntry* t = find_type(type)) {
    return t->name;
  }
  return "type " + std::to_string(static_cast<uint32_t>(type));
}

std::optional<GgmlTypeTraits> ggml_type_traits(GgmlType type) {
  if (const TypeEntry* t = find_type(type)) {
    return GgmlTypeTraits{t->block_size, t->type_size};
  }
  return std::nullopt;
}

int64_t TensorInfo::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) {
    n *= d;
  }
  return n;
}

GgufFile::~GgufFile() {
  if (map_ != nullptr) {
    ::munmap(map_, map_size_);
  }
}

GgufFile::GgufFile(GgufFile&& other) noexcept {
  *this = std::move(other);
}

GgufFile& GgufFile::operator=(GgufFile&& other) noexcept {
  if (this != &other) {
    if (map_ != nullptr) {
      ::munmap(map_, map_size_);
    }
    path_ = std::move(other.path_);
    map_ = std::exchange(other.map_, nullptr);
    map_size_ = std::exchange(other.map_size_, 0);
    version_ = other.version_;
    alignment_ = other.alignment_;
    data_start_ = other.data_start_;
    metadata_ = std::move(other.metadata_);
    tensors_ = std::move(other.tensors_);
    tensor_index_ = std::move(other.tensor_index_);
  }
  return *this;
}

std::string GgufFile::where() const {
  return "gguf '" + path_.string() + "'";
}

GgufFile GgufFile::open(const fs::path& path) {
  GgufFile file;
  file.path_ = path;
  const std::string where = file.where();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw std::runtime_error(
        error_message(where, "a readable file", std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw std::runtime_error(
        error_message(where, "a regular file", "a folder or special file"));
  }
  const auto file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 24) {
    ::close(fd);
    throw std::runtime_error(
        error_message(where, "at least 24 bytes (magic, version, counts)",
                      std::to_string(file_size) + " bytes",
                      "the file is truncated or not a GGUF file"));
  }
  void* map = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  if (map == MAP_FAILED) {
    throw std::runtime_error(error_message(where, "a file that can be mapped",
                                           std::strerror(map_errno)));
  }
  file.map_ = map;
  file.map_size_ = file_size;
  file.parse();
  return file;
}

void GgufFile::parse() {
  const std::string where = this->where();
  const auto* bytes = static_cast<const uint8_t*>(map_);
  Reader r(bytes, map_size_, where);

  const auto magic = r.read<uint32_t>("the magic");
  if (magic != kMagic) {
    char got[5] = {};
    std::memcpy(got, &magic, 4);
    for (char& c : got) {
      c = (c >= 32 && c < 127) || c == 0 ? c : '?';
    }
    throw std::runtime_error(error_message(
        where, "the magic \"GGUF\"", std::string("\"") + got + "\"",
        "not a GGUF file (a big-endian GGUF or an old GGML/GGJT file is not "
        "supported either)"));
  }
  version_ = r.read<uint32_t>("the version");
  if (version_ != 2 && version_ != 3) {
    throw std::runtime_error(error_message(
        where, "GGUF version 2 or 3", "version " + std::to_string(version_),
        version_ == 1 ? "version 1 files (2023) must be re-converted"
                      : "the file is corrupt or from a newer GGUF version"));
  }
  const auto n_tensors = r.read<uint64_t>("the tensor count");
  const auto n_kv = r.read<uint64_t>("the metadata count");

  // Counts are not checked against the file size up front: a corrupt count
  // runs into the end of the file at some entry, and that message says
  // which entry and that the file is truncated.
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string entry =
        "metadata entry " + std::to_string(i) + " of " + std::to_string(n_kv);
    std::string key = r.read_string("the key of " + entry);
    const std::string what = entry + " ('" + key + "')";
    const auto type = r.read<uint32_t>("the value type of " + what);
    json value = read_value(r, type, what, 0);
    if (metadata_.contains(key)) {
      throw std::runtime_error(error_message(where, "unique metadata keys",
                                             "'" + key + "' twice",
                                             "the file is corrupt"));
    }
    metadata_[std::move(key)] = std::move(value);
  }

  if (auto it = metadata_.find("general.alignment"); it != metadata_.end()) {
    if (!it->is_number_unsigned() || it->get<uint64_t>() == 0 ||
        (it->get<uint64_t>() & (it->get<uint64_t>() - 1)) != 0) {
      throw std::runtime_error(
          error_message(where, "general.alignment to be a power of two",
                        it->dump(), "the file is corrupt"));
    }
    alignment_ = it->get<uint64_t>();
  }

  // An entry takes at least 24 bytes: no reserving for a count the file
  // cannot hold.
  tensors_.reserve(std::min<uint64_t>(n_tensors, r.remaining() / 24));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const std::string entry = "tensor table entry " + std::to_string(i) +
                              " of " + std::to_string(n_tensors);
    TensorInfo info;
    info.name = r.read_string("the name of " + entry);
    const std::string what = entry + " ('" + info.name + "')";
    const auto n_dims = r.read<uint32_t>("the rank of " + what);
    if (n_dims > kMaxDims) {
      throw std::runtime_error(error_message(
          where,
          "at most " + std::to_string(kMaxDims) + " dimensions for " + what,
          std::to_string(n_dims), "the tensor table is corrupt"));
    }
    int64_t n = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const auto ne = r.read<uint64_t>("the shape of " + what);
      // 2^62 bounds every product below without overflow checks per step.
      if (ne > (uint64_t{1} << 62) ||
          (ne != 0 && static_cast<uint64_t>(n) > (uint64_t{1} << 62) / ne)) {
        throw std::runtime_error(error_message(
            where, "a shape of at most 2^62 elements for " + what,
            "dimension " + std::to_string(ne), "the tensor table is corrupt"));
      }
      info.shape.push_back(static_cast<int64_t>(ne));
      n *= static_cast<int64_t>(ne);
    }
    info.type = static_cast<GgmlType>(r.read<uint32_t>("the type of " + what));
    info.offset = r.read<uint64_t>("the data offset of " + what);
    const TypeEntry* t = find_type(info.type);
    if (t == nullptr) {
      throw std::runtime_error(error_message(
          where, "a ggml tensor type for " + what, ggml_type_name(info.type),
          "the file is corrupt or from a newer ggml"));
    }
    const int64_t ne0 = info.shape.empty() ? 1 : info.shape[0];
    if (ne0 % t->block_size != 0) {
      throw std::runtime_error(
          error_message(where,
                        "a first dimension that is a multiple of the " +
                            std::string(t->name) + " block size " +
                            std::to_string(t->block_size) + " for " + what,
                        std::to_string(ne0), "the tensor table is corrupt"));
    }
    info.nbytes = static_cast<uint64_t>(n / t->block_size) *
                  static_cast<uint64_t>(t->type_size);
    if (!tensor_index_.emplace(info.name, tensors_.size()).second) {
      throw std::runtime_error(error_message(where, "unique tensor names",
                                             "'" + info.name + "' twice",
                                             "the file is corrupt"));
    }
    tensors_.push_back(std::move(info));
  }

  // The data section starts at the next multiple of the alignment.
  data_start_ = (r.pos() + alignment_ - 1) / alignment_ * alignment_;
  const uint64_t data_size =
      data_start_ <= map_size_ ? map_size_ - data_start_ : 0;
  for (const TensorInfo& info : tensors_) {
    if (info.offset > data_size || info.nbytes > data_size - info.offset) {
      throw std::runtime_error(error_message(
          where,
          "the data of tensor '" + info.name + "' (" +
              std::to_string(info.nbytes) + " bytes at data offset " +
              std::to_string(info.offset) + ") within the " +
              std::to_string(data_size) + " bytes of the data section",
          "it ends " + std::to_string(info.offset + info.nbytes - data_size) +
              " bytes past the end of the file",
          "the file is truncated"));
    }
  }
}

const TensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* GgufFile::tensor_data(const TensorInfo& info) const {
  return static_cast<const uint8_t*>(map_) + data_start_ + info.offset;
}

}  // namespace peftcpp::gguf
