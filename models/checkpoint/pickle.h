#pragma once
// A small pickle machine for what torch.save writes (internal to
// models/checkpoint/; torch_bin.cpp is its user). It runs the opcodes of
// protocols 2-5 and models only what a state dict holds: containers,
// scalars, strings, and tensors rebuilt from storages
// (torch._utils._rebuild_tensor{,_v2,_v3}, _rebuild_parameter,
// collections.OrderedDict). Calls to other globals give opaque objects,
// which are an error only where a tensor is required. Storages come from
// the caller (the zip records), through a persistent-load callback.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace peftcpp::models::detail {

struct PyObj;
/// Objects are shared, as in Python: the memo and containers alias them.
using Obj = std::shared_ptr<PyObj>;

/// A Python object, as far as a torch.save state dict needs one.
struct PyObj {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kStr,
    kTuple,
    kList,
    kDict,
    kGlobal,   // a class or function named by GLOBAL: s = "module.name"
    kStorage,  // a persistent-id storage: storage + dtype
    kTensor,
    kOther,  // the result of calling a global we do not model: s = name
  };
  Kind kind = Kind::kNone;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<Obj> items;                  // tuple, list
  std::vector<std::pair<Obj, Obj>> pairs;  // dict, in insertion order
  at::Storage storage;
  at::ScalarType dtype = at::kByte;
  at::Tensor tensor;
};

/// A new object of `kind`.
Obj make_obj(PyObj::Kind kind);

/// "a dict", "an object (module.name)", ... for messages.
std::string describe(const Obj& o);

/// Returns the kStorage object for a persistent id tuple
/// ('storage', storage_type, key, location, numel).
using PersistentLoad = std::function<Obj(const Obj& pid)>;

/// Runs the pickle program `data` and returns its result. Throws
/// std::runtime_error naming `where` and the byte offset on malformed input.
Obj unpickle(const uint8_t* data, size_t size, const std::string& where,
             const PersistentLoad& persistent_load);

}  // namespace peftcpp::models::detail
