// The HDF5 cache of tokenize_cached. One file per key:
//   attributes  key (the text below), checksum (FNV-1a of the arrays, hex),
//               format_version, source (the data file, for people)
//   datasets    input_ids int32 [N_tok], token_type_ids int8 [N_tok],
//               offsets int64 [rows + 1], labels float32 [rows]
// Files are written with the newest HDF5 format, whose metadata carries
// checksums, so flipped bytes in the structure fail to open; flipped bytes
// in the arrays fail our checksum. Either way the file is rebuilt.

#include <hdf5.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include "common/error.h"
#include "data/dataset/tokenized_dataset.h"

namespace peftcpp::data {

namespace fs = std::filesystem;

namespace {

/// Bumped whenever the layout or the meaning of the arrays changes, so old
/// caches become stale instead of misread.
constexpr int kFormatVersion = 1;

/// FNV-1a, 64 bits: simple, stable across platforms and runs.
class Fnv1a {
 public:
  void bytes(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      h_ ^= p[i];
      h_ *= 0x100000001b3ULL;
    }
  }
  void u64(uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; ++i)
      b[i] = static_cast<unsigned char>(v >> (8 * i));  // little-endian
    bytes(b, 8);
  }
  /// Length first, so ("ab", "c") and ("a", "bc") differ.
  void str(std::string_view s) {
    u64(s.size());
    bytes(s.data(), s.size());
  }
  void f32(float v) {
    uint32_t bits = 0;
    if (std::isnan(v)) {
      bits = 0x7fc00000u;  // every NaN label hashes alike
    } else {
      std::memcpy(&bits, &v, 4);
    }
    u64(bits);
  }
  uint64_t value() const { return h_; }
  std::string hex() const {
    static const char* kDigits = "0123456789abcdef";
    std::string s(16, '0');
    for (int i = 0; i < 16; ++i)
      s[15 - i] = kDigits[(h_ >> (4 * i)) & 15];
    return s;
  }

 private:
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

std::string cache_key(const LabeledDataset& dataset,
                      const std::string& fingerprint,
                      const TokenizeDatasetOptions& options) {
  Fnv1a data;
  for (const auto& e : dataset.examples) {
    data.str(e.text);
    data.u64(e.text_pair ? 1 : 0);
    if (e.text_pair)
      data.str(*e.text_pair);
    data.f32(e.label);
  }
  data.u64(dataset.label_names.size());
  for (const auto& n : dataset.label_names)
    data.str(n);
  const EncodeOptions enc = dataset_encode_options(options);
  std::ostringstream key;
  key << "peftcpp tokenized dataset, format " << kFormatVersion
      << "\ntokenizer " << fingerprint << "\nmax_length "
      << (enc.max_length ? *enc.max_length : 0) << "\ntruncation "
      << truncation_name(enc.truncation) << "\nadd_special_tokens "
      << enc.add_special_tokens << "\nkind "
      << (dataset.kind == TaskKind::kRegression ? "regression"
                                                : "classification")
      << "\nlabels " << dataset.label_names.size() << "\nrows "
      << dataset.size() << "\nexamples " << data.hex();
  return key.str();
}

std::string checksum(const TokenizedDataset& d) {
  Fnv1a h;
  h.bytes(d.input_ids.data(), d.input_ids.size() * sizeof(int32_t));
  h.bytes(d.token_type_ids.data(), d.token_type_ids.size());
  h.bytes(d.offsets.data(), d.offsets.size() * sizeof(int64_t));
  h.bytes(d.labels.data(), d.labels.size() * sizeof(float));
  return h.hex();
}

/// HDF5 is not thread-safe in its serial build: one cache access at a time.
std::mutex& hdf5_mutex() {
  static std::mutex m;
  return m;
}

void silence_hdf5() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

/// Owns an HDF5 id and closes it.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0)
      close_(id_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  operator hid_t() const { return id_; }
  bool ok() const { return id_ >= 0; }
  /// Closes now and reports whether closing worked (a file's close flushes).
  bool close() {
    const hid_t id = id_;
    id_ = -1;
    return id < 0 || close_(id) >= 0;
  }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

/// Why a cache file cannot be used.
struct Unusable {
  bool stale = false;  // a readable file made for other inputs
  std::string reason;
};

// --- writing -----------------------------------------------------------------

void check(bool ok, const fs::path& path, const std::string& what) {
  if (!ok) {
    throw std::runtime_error(error_message(
        "tokenize_cached", "to write the cache file " + path.string(),
        "an HDF5 failure in " + what,
        "is the cache folder writable and the disk not full?"));
  }
}

void write_string_attribute(hid_t obj, const char* name,
                            const std::string& value, const fs::path& path) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  check(type.ok() &&
            H5Tset_size(type, std::max<size_t>(1, value.size())) >= 0 &&
            H5Tset_strpad(type, H5T_STR_NULLPAD) >= 0,
        path, std::string("the type of attribute ") + name);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT),
              H5Aclose);
  std::string buf = value.empty() ? std::string(1, '\0') : value;
  check(attr.ok() && H5Awrite(attr, type, buf.data()) >= 0, path,
        std::string("attribute ") + name);
}

template <typename T>
void write_array(hid_t file, const char* name, hid_t file_type, hid_t mem_type,
                 const std::vector<T>& values, const fs::path& path) {
  const hsize_t dims[1] = {static_cast<hsize_t>(values.size())};
  Handle space(H5Screate_simple(1, dims, nullptr), H5Sclose);
  Handle set(H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT,
                        H5P_DEFAULT),
             H5Dclose);
  check(space.ok() && set.ok(), path, std::string("dataset ") + name);
  if (!values.empty()) {
    check(H5Dwrite(set, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                   values.data()) >= 0,
          path, std::string("writing ") + name);
  }
}

void write_cache(const fs::path& path, const std::string& key,
                 const TokenizedDataset& d, const fs::path& source) {
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  // The newest format checksums its metadata (superblock, object headers).
  check(fapl.ok() && H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST,
                                          H5F_LIBVER_LATEST) >= 0,
        path, "file access properties");
  Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl),
              H5Fclose);
  check(file.ok(), path, "creating the file");
  write_array(file, "input_ids", H5T_STD_I32LE, H5T_NATIVE_INT32, d.input_ids,
              path);
  write_array(file, "token_type_ids", H5T_STD_I8LE, H5T_NATIVE_INT8,
              d.token_type_ids, path);
  write_array(file, "offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, d.offsets,
              path);
  write_array(file, "labels", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, d.labels, path);
  write_string_attribute(file, "key", key, path);
  write_string_attribute(file, "checksum", checksum(d), path);
  write_string_attribute(file, "format_version", std::to_string(kFormatVersion),
                         path);
  write_string_attribute(file, "source", source.string(), path);
  check(file.close(), path, "closing (flushing) the file");
}

// --- reading -----------------------------------------------------------------

std::optional<std::string> read_string_attribute(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) <= 0)
    return std::nullopt;
  Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  if (!attr.ok())
    return std::nullopt;
  Handle type(H5Aget_type(attr), H5Tclose);
  if (!type.ok() || H5Tget_class(type) != H5T_STRING ||
      H5Tis_variable_str(type) != 0)
    return std::nullopt;
  const size_t size = H5Tget_size(type);
  std::string buf(size, '\0');
  Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
  if (!mem.ok() || H5Tset_size(mem, size) < 0 ||
      H5Tset_strpad(mem, H5T_STR_NULLPAD) < 0 ||
      H5Aread(attr, mem, buf.data()) < 0)
    return std::nullopt;
  buf.erase(buf.find_last_not_of('\0') + 1);
  return buf;
}

template <typename T>
std::optional<std::vector<T>> read_array(hid_t file, const char* name,
                                         H5T_class_t type_class, hid_t mem_type,
                                         std::string& why) {
  Handle set(H5Dopen2(file, name, H5P_DEFAULT), H5Dclose);
  if (!set.ok()) {
    why = std::string("no readable dataset '") + name + "'";
    return std::nullopt;
  }
  Handle type(H5Dget_type(set), H5Tclose);
  if (!type.ok() || H5Tget_class(type) != type_class ||
      H5Tget_size(type) != sizeof(T)) {
    why = std::string("dataset '") + name + "' of another type";
    return std::nullopt;
  }
  Handle space(H5Dget_space(set), H5Sclose);
  hsize_t dims[1] = {0};
  if (!space.ok() || H5Sget_simple_extent_ndims(space) != 1 ||
      H5Sget_simple_extent_dims(space, dims, nullptr) != 1) {
    why = std::string("dataset '") + name + "' that is not one-dimensional";
    return std::nullopt;
  }
  std::vector<T> values(static_cast<size_t>(dims[0]));
  if (!values.empty() && H5Dread(set, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                 values.data()) < 0) {
    why = std::string("dataset '") + name + "' that cannot be read";
    return std::nullopt;
  }
  return values;
}

/// The cached dataset, or why the file cannot be used.
std::optional<TokenizedDataset> read_cache(const fs::path& path,
                                           const std::string& key,
                                           const LabeledDataset& source,
                                           Unusable& why) {
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    why.reason = "not an HDF5 file";
    return std::nullopt;
  }
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.ok()) {
    why.reason = "HDF5 cannot open it (truncated or damaged)";
    return std::nullopt;
  }
  const auto stored_key = read_string_attribute(file, "key");
  const auto stored_sum = read_string_attribute(file, "checksum");
  if (!stored_key || !stored_sum) {
    why.reason = "no readable key or checksum attribute";
    return std::nullopt;
  }
  if (*stored_key != key) {
    why.stale = true;
    why.reason = "made for other inputs (stored key differs)";
    return std::nullopt;
  }
  TokenizedDataset d;
  auto ids = read_array<int32_t>(file, "input_ids", H5T_INTEGER,
                                 H5T_NATIVE_INT32, why.reason);
  auto types = ids ? read_array<int8_t>(file, "token_type_ids", H5T_INTEGER,
                                        H5T_NATIVE_INT8, why.reason)
                   : std::nullopt;
  auto offsets = types ? read_array<int64_t>(file, "offsets", H5T_INTEGER,
                                             H5T_NATIVE_INT64, why.reason)
                       : std::nullopt;
  auto labels = offsets ? read_array<float>(file, "labels", H5T_FLOAT,
                                            H5T_NATIVE_FLOAT, why.reason)
                        : std::nullopt;
  if (!labels)
    return std::nullopt;
  d.input_ids = std::move(*ids);
  d.token_type_ids = std::move(*types);
  d.offsets = std::move(*offsets);
  d.labels = std::move(*labels);
  // The shapes must agree before anything indexes with the offsets.
  bool shapes = d.labels.size() == source.size() &&
                d.offsets.size() == d.labels.size() + 1 &&
                d.token_type_ids.size() == d.input_ids.size() &&
                d.offsets.front() == 0 &&
                d.offsets.back() == static_cast<int64_t>(d.input_ids.size());
  for (size_t i = 1; shapes && i < d.offsets.size(); ++i)
    shapes = d.offsets[i] >= d.offsets[i - 1];
  if (!shapes) {
    why.reason = "arrays whose sizes do not agree";
    return std::nullopt;
  }
  if (checksum(d) != *stored_sum) {
    why.reason = "arrays that do not match their checksum";
    return std::nullopt;
  }
  d.kind = source.kind;
  d.label_names = source.label_names;
  return d;
}

/// The file of a key: the key's hash names it, the key itself is inside.
fs::path path_for_key(const std::string& key, const fs::path& cache_dir) {
  Fnv1a name;
  name.str(key);
  return cache_dir / ("tokenized-" + name.hex() + ".h5");
}

}  // namespace

fs::path tokenized_cache_path(const LabeledDataset& dataset,
                              const std::string& tokenizer_fingerprint,
                              const TokenizeDatasetOptions& options,
                              const fs::path& cache_dir) {
  return path_for_key(cache_key(dataset, tokenizer_fingerprint, options),
                      cache_dir);
}

TokenizedDataset tokenize_cached(const LabeledDataset& dataset,
                                 const Tokenizer& tokenizer,
                                 const std::string& tokenizer_fingerprint,
                                 const TokenizeDatasetOptions& options,
                                 const fs::path& cache_dir,
                                 CacheOutcome* outcome, std::string* detail) {
  if (cache_dir.empty()) {
    throw std::invalid_argument(
        error_message("tokenize_cached", "a cache folder", "an empty path",
                      "call tokenize_dataset to tokenize without a cache"));
  }
  silence_hdf5();
  const std::string key = cache_key(dataset, tokenizer_fingerprint, options);
  const fs::path path = path_for_key(key, cache_dir);
  CacheOutcome result = CacheOutcome::kCreated;
  std::string why = path.string() + ": created";
  std::error_code ec;
  if (fs::exists(path, ec)) {
    Unusable unusable;
    std::optional<TokenizedDataset> cached;
    {
      std::lock_guard<std::mutex> lock(hdf5_mutex());
      cached = read_cache(path, key, dataset, unusable);
    }
    if (cached) {
      if (outcome != nullptr)
        *outcome = CacheOutcome::kHit;
      if (detail != nullptr)
        *detail = path.string() + ": hit";
      return std::move(*cached);
    }
    result = unusable.stale ? CacheOutcome::kRebuiltStale
                            : CacheOutcome::kRebuiltCorrupt;
    why = path.string() + ": rebuilt, " + unusable.reason;
  }

  TokenizedDataset fresh = tokenize_dataset(dataset, tokenizer, options);
  fs::create_directories(cache_dir, ec);
  const fs::path tmp =
      path.string() + ".tmp-" + std::to_string(static_cast<long>(::getpid()));
  try {
    std::lock_guard<std::mutex> lock(hdf5_mutex());
    write_cache(tmp, key, fresh, dataset.source);
    fs::rename(tmp, path);  // atomic: readers see the old or the new file
  } catch (const fs::filesystem_error& e) {
    fs::remove(tmp, ec);
    throw std::runtime_error(error_message(
        "tokenize_cached", "to rename the cache file into " + path.string(),
        e.what()));
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  if (outcome != nullptr)
    *outcome = result;
  if (detail != nullptr)
    *detail = why;
  return fresh;
}

std::string tokenizer_fingerprint(const fs::path& model_dir) {
  // Every file that can change how text becomes ids; config.json and the
  // weights cannot.
  static const char* kFiles[] = {"tokenizer.json",
                                 "tokenizer_config.json",
                                 "special_tokens_map.json",
                                 "added_tokens.json",
                                 "vocab.txt",
                                 "vocab.json",
                                 "merges.txt",
                                 "sentencepiece.bpe.model",
                                 "spiece.model",
                                 "tokenizer.model"};
  std::vector<fs::path> files;
  std::error_code ec;
  if (fs::is_regular_file(model_dir, ec)) {
    files.push_back(model_dir);
  } else {
    for (const char* name : kFiles) {
      if (fs::is_regular_file(model_dir / name, ec))
        files.push_back(model_dir / name);
    }
  }
  if (files.empty()) {
    throw std::runtime_error(error_message(
        "tokenizer_fingerprint",
        "tokenizer files (tokenizer.json or vocab.txt) in " +
            model_dir.string(),
        "none", "point at the model folder the tokenizer was loaded from"));
  }
  Fnv1a h;
  std::vector<char> buf(1 << 16);
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      throw std::runtime_error(error_message("tokenizer_fingerprint",
                                             "a readable file", f.string()));
    }
    h.str(f.filename().string());
    h.u64(static_cast<uint64_t>(fs::file_size(f, ec)));
    while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) ||
           in.gcount() > 0)
      h.bytes(buf.data(), static_cast<size_t>(in.gcount()));
  }
  return h.hex();
}

}  // namespace peftcpp::data
