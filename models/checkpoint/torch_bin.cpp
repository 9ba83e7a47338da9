#include "models/checkpoint/torch_bin.h"

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <fstream>
#include <stdexcept>
#include <unordered_map>

#include "common/error.h"
#include "models/checkpoint/pickle.h"

namespace peftcpp::models {

namespace fs = std::filesystem;
using detail::describe;
using detail::make_obj;
using detail::Obj;
using detail::PersistentLoad;
using detail::PyObj;
using detail::unpickle;

namespace {

// torch.<Name>Storage classes of typed storages (torch < 2.0 style records,
// still written for the classic dtypes).
const std::unordered_map<std::string, at::ScalarType>& storage_types() {
  static const std::unordered_map<std::string, at::ScalarType> m = {
      {"DoubleStorage", at::kDouble},
      {"FloatStorage", at::kFloat},
      {"HalfStorage", at::kHalf},
      {"BFloat16Storage", at::kBFloat16},
      {"LongStorage", at::kLong},
      {"IntStorage", at::kInt},
      {"ShortStorage", at::kShort},
      {"CharStorage", at::kChar},
      {"ByteStorage", at::kByte},
      {"BoolStorage", at::kBool},
      {"ComplexFloatStorage", at::kComplexFloat},
      {"ComplexDoubleStorage", at::kComplexDouble},
  };
  return m;
}

// Hands the pickle machine its storages: record "data/<key>" of the zip,
// read once per key, so tensors that shared a storage in Python (tied
// weights, views) share it here too.
class StorageLoader {
 public:
  StorageLoader(caffe2::serialize::PyTorchStreamReader& reader,
                std::string where)
      : reader_(&reader), where_(std::move(where)) {}

  Obj operator()(const Obj& pid) {
    // ('storage', storage_type, key, location, numel)
    const auto& a = pid->items;
    if (pid->kind != PyObj::Kind::kTuple || a.size() < 5 ||
        a[0]->kind != PyObj::Kind::kStr || a[0]->s != "storage" ||
        a[2]->kind != PyObj::Kind::kStr || a[4]->kind != PyObj::Kind::kInt) {
      fail("a ('storage', type, key, location, numel) persistent id",
           describe(pid));
    }
    auto o = make_obj(PyObj::Kind::kStorage);
    o->dtype = storage_dtype(a[1]);
    const std::string& key = a[2]->s;
    const auto cached = storages_.find(key);
    if (cached != storages_.end()) {
      o->storage = cached->second;
      return o;
    }
    const int64_t numel = a[4]->i;
    const size_t item = at::elementSize(o->dtype);
    const std::string record = "data/" + key;
    const std::string expected = "a record '" + record + "' of " +
                                 std::to_string(numel) + " x " +
                                 std::to_string(item) + " bytes";
    if (numel < 0 || !reader_->hasRecord(record)) {
      fail(expected, "none");
    }
    // Compared by division: a corrupt numel must not overflow into a pass.
    const size_t size = reader_->getRecordSize(record);
    if (uint64_t(numel) > size / item) {
      fail(expected, std::to_string(size) + " bytes");
    }
    // Tensors are always loaded to the CPU whatever their saved location (as
    // torch.load(map_location="cpu")); load_state_dict moves them.
    at::Tensor bytes = at::empty({int64_t(size)}, at::kByte);
    if (size > 0) {
      reader_->getRecord(record, bytes.data_ptr(), size);
    }
    o->storage = bytes.storage();
    // A second guard besides the bounds check in rebuild_tensor: a view
    // can never grow this storage.
    o->storage.unsafeGetStorageImpl()->set_resizable(false);
    storages_.emplace(key, o->storage);
    return o;
  }

  at::ScalarType storage_dtype(const Obj& type) const {
    if (type->kind == PyObj::Kind::kGlobal) {
      const std::string& n = type->s;
      // UntypedStorage holds bytes; _rebuild_tensor_v3 says the real dtype.
      if (n == "torch.storage.UntypedStorage" || n == "torch.UntypedStorage") {
        return at::kByte;
      }
      const std::string prefix = "torch.";
      if (n.compare(0, prefix.size(), prefix) == 0) {
        const auto it = storage_types().find(n.substr(prefix.size()));
        if (it != storage_types().end()) {
          return it->second;
        }
      }
    }
    fail("a torch storage type", describe(type));
  }

 private:
  [[noreturn]] void fail(const std::string& expected,
                         const std::string& got) const {
    throw std::runtime_error(
        error_message(where_ + ", data.pkl", expected, got,
                      "the file is damaged or not a torch.save state dict"));
  }

  caffe2::serialize::PyTorchStreamReader* reader_;
  std::string where_;
  std::unordered_map<std::string, at::Storage> storages_;
};

}  // namespace

std::map<std::string, at::Tensor> load_torch_bin(const fs::path& path) {
  const std::string where = "torch_bin '" + path.string() + "'";
  char magic[4] = {0, 0, 0, 0};
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      throw std::runtime_error(
          error_message(where, "a readable file", "one that cannot be opened"));
    }
    in.read(magic, 4);
  }
  if (std::memcmp(magic, "PK\x03\x04", 4) != 0) {
    // The legacy format starts with a pickled magic number (PROTO 2).
    const bool legacy = uint8_t(magic[0]) == 0x80;
    throw std::runtime_error(error_message(
        where, "a torch.save zip archive (torch >= 1.6)",
        legacy ? "the legacy pre-1.6 torch.save format"
               : "a file that is not a zip archive",
        legacy ? "re-save it with torch >= 1.6 (torch.save(torch.load(f), f))"
                 " or convert it to safetensors"
               : "is it a pytorch_model.bin written by torch.save?"));
  }

  std::map<std::string, at::Tensor> out;
  try {
    caffe2::serialize::PyTorchStreamReader reader(path.string());
    if (!reader.hasRecord("data.pkl")) {
      throw std::runtime_error(error_message(
          where, "a 'data.pkl' record", "a zip archive without one",
          "is it a TorchScript archive or another zip file?"));
    }
    if (reader.hasRecord("byteorder")) {
      auto [ptr, size] = reader.getRecord("byteorder");
      const std::string order(static_cast<const char*>(ptr.get()), size);
      if (order != "little") {
        throw std::runtime_error(error_message(
            where, "little-endian tensor data", "'" + order + "'"));
      }
    }
    auto [pkl, pkl_size] = reader.getRecord("data.pkl");
    const PersistentLoad load_storage = StorageLoader(reader, where);
    const Obj root = unpickle(static_cast<const uint8_t*>(pkl.get()), pkl_size,
                              where, load_storage);
    if (root->kind != PyObj::Kind::kDict) {
      throw std::runtime_error(error_message(
          where, "a dict of name -> tensor", describe(root),
          "a training checkpoint? save model.state_dict() instead"));
    }
    for (const auto& [key, value] : root->pairs) {
      if (key->kind != PyObj::Kind::kStr) {
        throw std::runtime_error(error_message(
            where, "string keys", describe(key), "not a state dict"));
      }
      if (value->kind != PyObj::Kind::kTensor) {
        throw std::runtime_error(error_message(
            where + ", entry '" + key->s + "'", "a tensor", describe(value),
            "not a plain state dict; a training checkpoint?"));
      }
      out[key->s] = value->tensor;
    }
  } catch (const c10::Error& e) {
    // Damaged archives and impossible tensor geometry surface as c10::Error
    // from the zip reader and set_; keep the library's error contract.
    throw std::runtime_error(error_message(
        where, "a readable torch.save archive", e.what_without_backtrace(),
        "the file is damaged; re-download or re-save it"));
  }
  return out;
}

}  // namespace peftcpp::models
