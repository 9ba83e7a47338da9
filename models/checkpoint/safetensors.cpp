#include "models/checkpoint/safetensors.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <stdexcept>

#include "common/atomic_file.h"
#include "common/error.h"

// The format stores little-endian data and tensors are handed out as views of
// the raw bytes, so a big-endian host would need byte swapping everywhere.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors I/O assumes a little-endian host");

namespace peftcpp::models {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// The Python library refuses headers above 100 MB; a larger length is a sure
// sign of a corrupt file rather than a real header.
constexpr uint64_t kMaxHeaderSize = 100'000'000;

struct DtypeEntry {
  const char* name;
  at::ScalarType type;
};

// The format's dtypes that torch can hold, in the order of the Rust crate's
// `Dtype` enum (ascending alignment). The writer sorts by it, as the crate
// does, so our files are byte-identical to the Python library's.
constexpr DtypeEntry kDtypes[] = {
    {"BOOL", at::kBool},
    {"U8", at::kByte},
    {"I8", at::kChar},
    {"F8_E5M2", at::kFloat8_e5m2},
    {"F8_E4M3", at::kFloat8_e4m3fn},
    {"I16", at::kShort},
    {"F16", at::kHalf},
    {"BF16", at::kBFloat16},
    {"I32", at::kInt},
    {"F32", at::kFloat},
    {"F64", at::kDouble},
    {"I64", at::kLong},
};

size_t dtype_rank(at::ScalarType type) {
  for (size_t i = 0; i < std::size(kDtypes); ++i) {
    if (kDtypes[i].type == type) {
      return i;
    }
  }
  return 0;  // unreachable: save_safetensors checked the dtype
}

std::string known_dtypes() {
  std::vector<std::string> names;
  for (const auto& d : kDtypes) {
    names.emplace_back(d.name);
  }
  return join_names(names, ", ", 32);
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return s + "]";
}

// A JSON value shortened for a message, so a huge corrupt header does not
// flood the terminal.
std::string brief(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

}  // namespace

std::string safetensors_dtype_name(at::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (d.type == type) {
      return d.name;
    }
  }
  throw std::invalid_argument(error_message(
      "safetensors", "a dtype the format holds (" + known_dtypes() + ")",
      std::string(c10::toString(type))));
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const fs::path& path) {
  // The constructor is private (instances must live in a shared_ptr for
  // tensor() to keep the mapping alive), so no make_shared.
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  const std::string where = "safetensors '" + path.string() + "'";

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
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    throw std::runtime_error(
        error_message(where, "at least 8 bytes (the header length)",
                      std::to_string(file_size) + " bytes",
                      "the file is truncated or not a safetensors file"));
  }
  // Private and writable: in-place ops on a zero-copy tensor then touch a
  // process-private copy of the page instead of crashing on a read-only
  // mapping; the file itself is opened read-only and never changes.
  void* map =
      ::mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  if (map == MAP_FAILED) {
    throw std::runtime_error(error_message(where, "a file that can be mapped",
                                           std::strerror(map_errno)));
  }
  file->map_ = map;
  file->map_size_ = file_size;

  const auto* bytes = static_cast<const uint8_t*>(map);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) {
    header_len = (header_len << 8) | bytes[i];
  }
  if (header_len > file_size - 8) {
    throw std::runtime_error(error_message(
        where,
        "a header length of at most " + std::to_string(file_size - 8) +
            " bytes (file size " + std::to_string(file_size) + ")",
        std::to_string(header_len),
        "the file is truncated or not a safetensors file"));
  }
  if (header_len > kMaxHeaderSize) {
    throw std::runtime_error(error_message(
        where, "a header length of at most " + std::to_string(kMaxHeaderSize),
        std::to_string(header_len), "the header is corrupt"));
  }
  file->data_ = bytes + 8 + header_len;
  file->data_size_ = file_size - 8 - header_len;
  file->parse_header(header_len);
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) {
    ::munmap(map_, map_size_);
  }
}

void SafetensorsFile::parse_header(uint64_t header_len) {
  const std::string where = "safetensors '" + path_.string() + "'";
  const char* text = reinterpret_cast<const char*>(data_) - header_len;
  json header;
  try {
    header = json::parse(text, text + header_len);
  } catch (const json::parse_error& e) {
    throw std::runtime_error(error_message(
        where, "a JSON header", std::string("invalid JSON (") + e.what() + ")",
        "the header is corrupt"));
  }
  if (!header.is_object()) {
    throw std::runtime_error(error_message(
        where, "a JSON object header",
        std::string("a JSON ") + header.type_name() + " " + brief(header)));
  }

  uint64_t max_end = 0;
  std::string max_end_name;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) {
        throw std::runtime_error(error_message(
            where, "__metadata__ to be an object of strings", brief(entry)));
      }
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string()) {
          throw std::runtime_error(
              error_message(where + ", __metadata__ '" + m.key() + "'",
                            "a string value", brief(m.value())));
        }
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string at = where + ", tensor '" + name + "'";
    if (!entry.is_object()) {
      throw std::runtime_error(error_message(
          at, "an object with dtype, shape and data_offsets", brief(entry)));
    }
    SafetensorsTensorInfo info;
    const auto dtype = entry.find("dtype");
    if (dtype == entry.end() || !dtype->is_string()) {
      throw std::runtime_error(error_message(
          at, "a string \"dtype\"", brief(entry), "the header is corrupt"));
    }
    info.dtype = dtype->get<std::string>();
    const auto known =
        std::find_if(std::begin(kDtypes), std::end(kDtypes),
                     [&](const DtypeEntry& d) { return info.dtype == d.name; });
    if (known == std::end(kDtypes)) {
      throw std::runtime_error(error_message(
          at, "a dtype among " + known_dtypes(), "'" + info.dtype + "'",
          "written by a newer safetensors, or the header is corrupt"));
    }
    info.scalar_type = known->type;

    const auto shape = entry.find("shape");
    if (shape == entry.end() || !shape->is_array()) {
      throw std::runtime_error(
          error_message(at, "a \"shape\" array", brief(entry)));
    }
    // numel * itemsize must not overflow: a corrupt shape could otherwise
    // wrap around and pass the size check below.
    uint64_t nbytes = at::elementSize(info.scalar_type);
    for (const json& d : *shape) {
      const bool ok = d.is_number_unsigned() ||
                      (d.is_number_integer() && d.get<int64_t>() >= 0);
      if (!ok ||
          d.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
        throw std::runtime_error(error_message(
            at, "a shape of non-negative integers", brief(*shape)));
      }
      info.shape.push_back(d.get<int64_t>());
      if (__builtin_mul_overflow(nbytes, d.get<uint64_t>(), &nbytes)) {
        throw std::runtime_error(error_message(
            at, "a shape whose byte size fits in 64 bits", brief(*shape)));
      }
    }

    const auto offsets = entry.find("data_offsets");
    if (offsets == entry.end() || !offsets->is_array() ||
        offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
        !(*offsets)[1].is_number_unsigned() ||
        (*offsets)[0].get<uint64_t>() > (*offsets)[1].get<uint64_t>()) {
      throw std::runtime_error(error_message(
          at, "\"data_offsets\": [begin, end] with 0 <= begin <= end",
          brief(entry)));
    }
    info.begin = (*offsets)[0].get<uint64_t>();
    info.end = (*offsets)[1].get<uint64_t>();
    if (info.end - info.begin != nbytes) {
      throw std::runtime_error(
          error_message(at,
                        std::to_string(nbytes) + " bytes of data (shape " +
                            shape_str(info.shape) + " of " + info.dtype + ")",
                        "data_offsets [" + std::to_string(info.begin) + ", " +
                            std::to_string(info.end) + "] (" +
                            std::to_string(info.end - info.begin) + " bytes)",
                        "the header is corrupt"));
    }
    if (info.end > max_end) {
      max_end = info.end;
      max_end_name = name;
    }
    keys_.push_back(name);
    infos_.emplace(name, std::move(info));
  }

  if (max_end > data_size_) {
    const auto& last = infos_.at(max_end_name);
    throw std::runtime_error(error_message(
        where, std::to_string(max_end) + " bytes of tensor data",
        std::to_string(data_size_) + " (tensor '" + max_end_name +
            "' has data_offsets [" + std::to_string(last.begin) + ", " +
            std::to_string(last.end) + "])",
        "the file is truncated (an interrupted download?) or its header "
        "is corrupt"));
  }

  std::sort(keys_.begin(), keys_.end(),
            [&](const std::string& a, const std::string& b) {
              const auto& ia = infos_.at(a);
              const auto& ib = infos_.at(b);
              return std::tie(ia.begin, ia.end, a) <
                     std::tie(ib.begin, ib.end, b);
            });
  // Sorted by begin, two non-empty ranges overlap iff one starts before the
  // previous one ends. Empty tensors own no bytes and cannot overlap.
  const std::string* prev = nullptr;
  for (const auto& name : keys_) {
    const auto& info = infos_.at(name);
    if (info.begin == info.end) {
      continue;
    }
    if (prev != nullptr && info.begin < infos_.at(*prev).end) {
      const auto& p = infos_.at(*prev);
      throw std::runtime_error(
          error_message(where, "non-overlapping tensor data",
                        "'" + *prev + "' [" + std::to_string(p.begin) + ", " +
                            std::to_string(p.end) + ") overlapping '" + name +
                            "' [" + std::to_string(info.begin) + ", " +
                            std::to_string(info.end) + ")",
                        "the header is corrupt"));
    }
    prev = &name;
  }
}

bool SafetensorsFile::contains(const std::string& name) const {
  return infos_.count(name) != 0;
}

const SafetensorsTensorInfo& SafetensorsFile::info(
    const std::string& name) const {
  const auto it = infos_.find(name);
  if (it == infos_.end()) {
    throw std::out_of_range(
        error_message("safetensors '" + path_.string() + "'",
                      "one of its " + std::to_string(keys_.size()) +
                          " tensors (" + join_names(keys_, ", ", 5) + ")",
                      "'" + name + "'"));
  }
  return it->second;
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsTensorInfo& ti = info(name);
  const auto options = at::TensorOptions().dtype(ti.scalar_type);
  const size_t nbytes = ti.end - ti.begin;
  if (nbytes == 0) {
    return at::empty(ti.shape, options);
  }
  const uint8_t* src = data_ + ti.begin;
  const size_t item = at::elementSize(ti.scalar_type);
  if (reinterpret_cast<uintptr_t>(src) % item == 0) {
    // The deleter owns a reference to this file: the mapping outlives every
    // tensor that points into it.
    auto keep_alive = shared_from_this();
    return at::from_blob(
        const_cast<uint8_t*>(src), ti.shape, [keep_alive](void*) {}, options);
  }
  // Misaligned data (hand-made files): kernels may assume element alignment,
  // so hand out an aligned copy instead.
  at::Tensor copy = at::empty(ti.shape, options);
  std::memcpy(copy.data_ptr(), src, nbytes);
  return copy;
}

void save_safetensors(
    const fs::path& path,
    const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata) {
  const std::string where = "save_safetensors '" + path.string() + "'";
  std::set<std::string> seen;
  std::vector<std::string> dtypes(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    const std::string at = where + ", tensor '" + name + "'";
    if (name == "__metadata__") {
      throw std::invalid_argument(error_message(
          at, "a tensor name", "the reserved key '__metadata__'"));
    }
    if (!seen.insert(name).second) {
      throw std::invalid_argument(
          error_message(at, "unique tensor names", "a duplicate name"));
    }
    if (!t.defined() || t.layout() != at::kStrided) {
      throw std::invalid_argument(
          error_message(at, "a defined dense tensor",
                        t.defined() ? "a sparse or otherwise non-strided tensor"
                                    : "an undefined tensor"));
    }
    try {
      dtypes[i] = safetensors_dtype_name(t.scalar_type());
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(at + ": " + e.what());
    }
  }

  // Descending dtype rank (~ alignment), then name, as the Python library
  // lays data out: with an 8-aligned data start every tensor is aligned for
  // its dtype, so readers can map instead of copy.
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const size_t ra = dtype_rank(tensors[a].second.scalar_type());
    const size_t rb = dtype_rank(tensors[b].second.scalar_type());
    if (ra != rb) {
      return ra > rb;
    }
    return tensors[a].first < tensors[b].first;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    header["__metadata__"] = metadata;
  }
  uint64_t offset = 0;
  for (const size_t i : order) {
    const at::Tensor& t = tensors[i].second;
    const uint64_t nbytes = uint64_t(t.numel()) * t.element_size();
    header[tensors[i].first] = {{"dtype", dtypes[i]},
                                {"shape", t.sizes().vec()},
                                {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::type_error& e) {
    throw std::invalid_argument(
        error_message(where, "UTF-8 tensor names and metadata",
                      std::string("invalid UTF-8 (") + e.what() + ")"));
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  write_file_atomically(path, [&](std::ostream& out) {
    char len[8];
    for (int b = 0; b < 8; ++b) {
      len[b] = char((text.size() >> (8 * b)) & 0xff);
    }
    out.write(len, 8);
    out.write(text.data(), std::streamsize(text.size()));
    // One tensor at a time on the CPU, so saving a GPU model needs host
    // memory for its largest tensor only.
    for (const size_t i : order) {
      const at::Tensor cpu = tensors[i]
                                 .second.detach()
                                 .to(at::kCPU)
                                 .resolve_conj()
                                 .resolve_neg()
                                 .contiguous();
      const auto nbytes = std::streamsize(cpu.numel() * cpu.element_size());
      if (nbytes > 0) {
        out.write(static_cast<const char*>(cpu.const_data_ptr()), nbytes);
      }
    }
  });
}

}  // namespace peftcpp::models
