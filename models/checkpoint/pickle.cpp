#include "models/checkpoint/pickle.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <unordered_map>

#include "common/error.h"

namespace peftcpp::models::detail {

Obj make_obj(PyObj::Kind kind) {
  auto o = std::make_shared<PyObj>();
  o->kind = kind;
  return o;
}

static const char* kind_name(PyObj::Kind k) {
  switch (k) {
    case PyObj::Kind::kNone:
      return "None";
    case PyObj::Kind::kBool:
      return "a bool";
    case PyObj::Kind::kInt:
      return "an int";
    case PyObj::Kind::kFloat:
      return "a float";
    case PyObj::Kind::kStr:
      return "a string";
    case PyObj::Kind::kTuple:
      return "a tuple";
    case PyObj::Kind::kList:
      return "a list";
    case PyObj::Kind::kDict:
      return "a dict";
    case PyObj::Kind::kGlobal:
      return "a class or function";
    case PyObj::Kind::kStorage:
      return "a storage";
    case PyObj::Kind::kTensor:
      return "a tensor";
    case PyObj::Kind::kOther:
      return "an object";
  }
  return "an object";
}

std::string describe(const Obj& o) {
  if (o->kind == PyObj::Kind::kOther || o->kind == PyObj::Kind::kGlobal) {
    return std::string(kind_name(o->kind)) + " (" + o->s + ")";
  }
  return kind_name(o->kind);
}

namespace {

// torch.<dtype> globals, the dtype argument of _rebuild_tensor_v3.
const std::unordered_map<std::string, at::ScalarType>& dtype_globals() {
  static const std::unordered_map<std::string, at::ScalarType> m = {
      {"float64", at::kDouble},
      {"float32", at::kFloat},
      {"float16", at::kHalf},
      {"bfloat16", at::kBFloat16},
      {"int64", at::kLong},
      {"int32", at::kInt},
      {"int16", at::kShort},
      {"int8", at::kChar},
      {"uint8", at::kByte},
      {"bool", at::kBool},
      {"uint16", at::kUInt16},
      {"uint32", at::kUInt32},
      {"uint64", at::kUInt64},
      {"complex64", at::kComplexFloat},
      {"complex128", at::kComplexDouble},
      {"float8_e4m3fn", at::kFloat8_e4m3fn},
      {"float8_e5m2", at::kFloat8_e5m2},
      {"float8_e4m3fnuz", at::kFloat8_e4m3fnuz},
      {"float8_e5m2fnuz", at::kFloat8_e5m2fnuz},
  };
  return m;
}

// The machine: a stack, marks and a memo, as in CPython's _Unpickler.
class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, std::string where,
            const PersistentLoad& persistent_load)
      : p_(data),
        end_(data + size),
        begin_(data),
        where_(std::move(where)),
        persistent_load_(persistent_load) {}

  Obj run();

 private:
  [[noreturn]] void fail(const std::string& expected,
                         const std::string& got) const {
    throw std::runtime_error(error_message(
        where_ + ", data.pkl byte " + std::to_string(pos_), expected, got,
        "the file is damaged or not a torch.save state dict"));
  }
  const uint8_t* take(size_t n) {
    if (size_t(end_ - p_) < n) {
      fail(std::to_string(n) + " more bytes of pickle data",
           std::to_string(end_ - p_) + " (truncated)");
    }
    const uint8_t* at = p_;
    p_ += n;
    return at;
  }
  template <typename T>
  T read_le() {  // pickle integers are little-endian, like the host
    T v;
    std::memcpy(&v, take(sizeof(T)), sizeof(T));
    return v;
  }
  std::string read_str(size_t n) {
    const uint8_t* s = take(n);
    return std::string(reinterpret_cast<const char*>(s), n);
  }
  std::string read_line() {
    const void* nl = std::memchr(p_, '\n', size_t(end_ - p_));
    if (nl == nullptr) {
      fail("a newline-terminated name", "end of data");
    }
    const size_t n = static_cast<const uint8_t*>(nl) - p_;
    std::string s = read_str(n);
    take(1);
    return s;
  }
  Obj pop() {
    if (stack_.empty()) {
      fail("a value on the pickle stack", "an empty stack");
    }
    Obj o = std::move(stack_.back());
    stack_.pop_back();
    return o;
  }
  size_t pop_mark() {
    if (marks_.empty()) {
      fail("a MARK", "none");
    }
    const size_t m = marks_.back();
    marks_.pop_back();
    if (m > stack_.size()) {
      fail("a MARK within the stack", "a stale MARK");
    }
    return m;
  }
  std::vector<Obj> pop_to_mark() {
    const size_t m = pop_mark();
    std::vector<Obj> items(stack_.begin() + m, stack_.end());
    stack_.resize(m);
    return items;
  }
  Obj& top() {
    if (stack_.empty()) {
      fail("a value on the pickle stack", "an empty stack");
    }
    return stack_.back();
  }
  Obj dict_at_top() {
    if (stack_.empty() || stack_.back()->kind != PyObj::Kind::kDict) {
      fail("a dict to set items on",
           stack_.empty() ? "an empty stack" : describe(stack_.back()));
    }
    return stack_.back();
  }
  Obj make_str(uint64_t n) {
    auto o = make_obj(PyObj::Kind::kStr);
    o->s = read_str(n);
    return o;
  }
  Obj read_int(uint8_t op) {
    auto o = make_obj(PyObj::Kind::kInt);
    if (op == 'K') {
      o->i = read_le<uint8_t>();
    }
    if (op == 'M') {
      o->i = read_le<uint16_t>();
    }
    if (op == 'J') {
      o->i = read_le<int32_t>();
    }
    if (op == 0x8a) {  // LONG1: n-byte little-endian two's complement
      const uint8_t n = read_le<uint8_t>();
      if (n > 8) {
        fail("an integer of at most 8 bytes", std::to_string(n));
      }
      const uint8_t* b = take(n);
      uint64_t v = 0;
      for (int k = n - 1; k >= 0; --k) {
        v = (v << 8) | b[k];
      }
      if (n > 0 && n < 8 && (b[n - 1] & 0x80)) {
        v |= ~0ULL << (8 * n);
      }
      o->i = int64_t(v);
    }
    return o;
  }
  void memo_put(uint64_t id) { memo_[id] = top(); }
  void memo_get(uint64_t id) {
    const auto it = memo_.find(id);
    if (it == memo_.end()) {
      fail("a memoized value", "an unknown memo id");
    }
    stack_.push_back(it->second);
  }

  Obj call(const Obj& callable, const Obj& args);
  Obj rebuild_tensor(const std::vector<Obj>& a, size_t dtype_arg);

  const uint8_t* p_;
  const uint8_t* end_;
  const uint8_t* begin_;
  size_t pos_ = 0;  // offset of the current opcode, for messages
  std::string where_;
  const PersistentLoad& persistent_load_;
  std::vector<Obj> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Obj> memo_;
};

// Pickle opcodes (Lib/pickletools.py), protocols 2 to 5.
enum Op : uint8_t {
  kProto = 0x80,
  kFrame = 0x95,
  kStop = '.',
  kMark = '(',
  kPop = '0',
  kPopMark = '1',
  kDup = '2',
  kNone = 'N',
  kNewTrue = 0x88,
  kNewFalse = 0x89,
  kBinInt1 = 'K',
  kBinInt2 = 'M',
  kBinInt = 'J',
  kLong1 = 0x8a,
  kBinFloat = 'G',
  kBinUnicode = 'X',
  kShortBinUnicode = 0x8c,
  kBinUnicode8 = 0x8d,
  kBinString = 'T',
  kShortBinString = 'U',
  kBinBytes = 'B',
  kShortBinBytes = 'C',
  kBinBytes8 = 0x8e,
  kEmptyTuple = ')',
  kTuple = 't',
  kTuple1 = 0x85,
  kTuple2 = 0x86,
  kTuple3 = 0x87,
  kEmptyList = ']',
  kList = 'l',
  kAppend = 'a',
  kAppends = 'e',
  kEmptyDict = '}',
  kDict = 'd',
  kSetItem = 's',
  kSetItems = 'u',
  kBinPut = 'q',
  kLongBinPut = 'r',
  kMemoize = 0x94,
  kBinGet = 'h',
  kLongBinGet = 'j',
  kGlobal = 'c',
  kStackGlobal = 0x93,
  kReduce = 'R',
  kNewObj = 0x81,
  kBuild = 'b',
  kBinPersId = 'Q',
};

Obj Unpickler::run() {
  while (true) {
    pos_ = size_t(p_ - begin_);
    const uint8_t op = *take(1);
    switch (op) {
      case kProto:
        take(1);
        break;
      case kFrame:  // framing only groups opcodes; the data is inline
        take(8);
        break;
      case kStop:
        return pop();
      case kMark:
        marks_.push_back(stack_.size());
        break;
      case kPop:
        pop();
        break;
      case kPopMark:
        stack_.resize(pop_mark());
        break;
      case kDup:
        stack_.push_back(top());
        break;
      case kNone:
        stack_.push_back(make_obj(PyObj::Kind::kNone));
        break;
      case kNewTrue:
      case kNewFalse: {
        auto o = make_obj(PyObj::Kind::kBool);
        o->i = op == kNewTrue;
        stack_.push_back(o);
        break;
      }
      case kBinInt1:
      case kBinInt2:
      case kBinInt:
      case kLong1:
        stack_.push_back(read_int(op));
        break;
      case kBinFloat: {  // big-endian, unlike everything else
        const uint8_t* b = take(8);
        uint64_t v = 0;
        for (int k = 0; k < 8; ++k) {
          v = (v << 8) | b[k];
        }
        auto o = make_obj(PyObj::Kind::kFloat);
        std::memcpy(&o->f, &v, 8);
        stack_.push_back(o);
        break;
      }
      case kBinUnicode:
      case kBinString:
      case kBinBytes:
        stack_.push_back(make_str(read_le<uint32_t>()));
        break;
      case kShortBinUnicode:
      case kShortBinString:
      case kShortBinBytes:
        stack_.push_back(make_str(read_le<uint8_t>()));
        break;
      case kBinUnicode8:
      case kBinBytes8:
        stack_.push_back(make_str(read_le<uint64_t>()));
        break;
      case kEmptyTuple:
        stack_.push_back(make_obj(PyObj::Kind::kTuple));
        break;
      case kTuple:
      case kTuple1:
      case kTuple2:
      case kTuple3: {
        auto o = make_obj(PyObj::Kind::kTuple);
        if (op == kTuple) {
          o->items = pop_to_mark();
        } else {
          o->items.resize(op - kTuple1 + 1);
          for (size_t k = o->items.size(); k-- > 0;) {
            o->items[k] = pop();
          }
        }
        stack_.push_back(o);
        break;
      }
      case kEmptyList:
        stack_.push_back(make_obj(PyObj::Kind::kList));
        break;
      case kList: {
        auto o = make_obj(PyObj::Kind::kList);
        o->items = pop_to_mark();
        stack_.push_back(o);
        break;
      }
      case kAppend:
      case kAppends: {
        std::vector<Obj> items;
        if (op == kAppend) {
          items.push_back(pop());
        } else {
          items = pop_to_mark();
        }
        Obj& list = top();
        if (list->kind != PyObj::Kind::kList) {
          fail("a list", describe(list));
        }
        for (auto& it : items) {
          list->items.push_back(std::move(it));
        }
        break;
      }
      case kEmptyDict:
        stack_.push_back(make_obj(PyObj::Kind::kDict));
        break;
      case kDict:
      case kSetItems: {
        std::vector<Obj> kv = pop_to_mark();
        if (kv.size() % 2 != 0) {
          fail("key/value pairs", "an odd count");
        }
        if (op == kDict) {
          stack_.push_back(make_obj(PyObj::Kind::kDict));
        }
        Obj dict = dict_at_top();
        for (size_t k = 0; k < kv.size(); k += 2) {
          dict->pairs.emplace_back(kv[k], kv[k + 1]);
        }
        break;
      }
      case kSetItem: {
        Obj value = pop();
        Obj key = pop();
        dict_at_top()->pairs.emplace_back(key, value);
        break;
      }
      case kBinPut:
        memo_put(read_le<uint8_t>());
        break;
      case kLongBinPut:
        memo_put(read_le<uint32_t>());
        break;
      case kMemoize:
        memo_put(memo_.size());
        break;
      case kBinGet:
        memo_get(read_le<uint8_t>());
        break;
      case kLongBinGet:
        memo_get(read_le<uint32_t>());
        break;
      case kGlobal: {
        auto o = make_obj(PyObj::Kind::kGlobal);
        const std::string module = read_line();
        o->s = module + "." + read_line();
        stack_.push_back(o);
        break;
      }
      case kStackGlobal: {
        Obj name = pop();
        Obj module = pop();
        auto o = make_obj(PyObj::Kind::kGlobal);
        o->s = module->s + "." + name->s;
        stack_.push_back(o);
        break;
      }
      case kReduce:
      case kNewObj: {
        Obj args = pop();
        Obj callable = pop();
        stack_.push_back(call(callable, args));
        break;
      }
      case kBuild:  // object state (OrderedDict._metadata): not needed
        pop();
        top();
        break;
      case kBinPersId: {
        Obj pid = pop();
        stack_.push_back(persistent_load_(pid));
        break;
      }
      default: {
        char hex[8];
        std::snprintf(hex, sizeof(hex), "0x%02x", op);
        fail("a pickle opcode torch.save writes", std::string("opcode ") + hex);
      }
    }
  }
}

Obj Unpickler::call(const Obj& callable, const Obj& args) {
  if (callable->kind != PyObj::Kind::kGlobal) {
    fail("a class or function to call", describe(callable));
  }
  const std::string& name = callable->s;
  if (args->kind != PyObj::Kind::kTuple) {
    fail("an argument tuple for " + name, describe(args));
  }
  const auto& a = args->items;
  if (name == "collections.OrderedDict") {
    // OrderedDict() then SETITEMS; its _metadata attribute arrives through
    // BUILD and is dropped. This is the case LibTorch's unpickler misses.
    return make_obj(PyObj::Kind::kDict);
  }
  if (name == "torch._utils._rebuild_tensor" ||
      name == "torch._utils._rebuild_tensor_v2") {
    return rebuild_tensor(a, /*dtype_arg=*/0);
  }
  if (name == "torch._utils._rebuild_tensor_v3") {
    return rebuild_tensor(a, /*dtype_arg=*/6);
  }
  if (name == "torch._utils._rebuild_parameter" ||
      name == "torch._utils._rebuild_parameter_with_state") {
    // (data, requires_grad, backward_hooks[, state]): a Parameter is just
    // its data for loading.
    if (a.empty() || a[0]->kind != PyObj::Kind::kTensor) {
      fail("a tensor for " + name, a.empty() ? "nothing" : describe(a[0]));
    }
    return a[0];
  }
  if (name == "torch._tensor._rebuild_from_type_v2") {
    // (func, type, args, state): tensor subclasses; rebuild the base tensor.
    if (a.size() < 3) {
      fail("4 arguments for " + name, "fewer");
    }
    return call(a[0], a[2]);
  }
  auto o = make_obj(PyObj::Kind::kOther);
  o->s = name;
  return o;
}

Obj Unpickler::rebuild_tensor(const std::vector<Obj>& a, size_t dtype_arg) {
  // (storage, storage_offset, size, stride, ...[, dtype at dtype_arg])
  const auto int_tuple = [&](const Obj& t) {
    if (t->kind != PyObj::Kind::kTuple) {
      fail("a tuple of ints", describe(t));
    }
    std::vector<int64_t> v;
    for (const auto& e : t->items) {
      if (e->kind != PyObj::Kind::kInt) {
        fail("an int", describe(e));
      }
      v.push_back(e->i);
    }
    return v;
  };
  if (a.size() < 4 || a[0]->kind != PyObj::Kind::kStorage ||
      a[1]->kind != PyObj::Kind::kInt || a.size() <= dtype_arg) {
    fail("(storage, offset, size, stride, ...) to rebuild a tensor",
         a.empty() ? "nothing" : describe(a[0]));
  }
  at::ScalarType dtype = a[0]->dtype;
  if (dtype_arg != 0) {
    const Obj& d = a[dtype_arg];
    const std::string prefix = "torch.";
    const auto it = d->kind == PyObj::Kind::kGlobal &&
                            d->s.compare(0, prefix.size(), prefix) == 0
                        ? dtype_globals().find(d->s.substr(prefix.size()))
                        : dtype_globals().end();
    if (it == dtype_globals().end()) {
      fail("a torch dtype", describe(d));
    }
    dtype = it->second;
  }
  const auto tuple_str = [](const std::vector<int64_t>& v) {
    std::string out = "(";
    for (size_t i = 0; i < v.size(); ++i) {
      out += (i ? ", " : "") + std::to_string(v[i]);
    }
    return out + ")";
  };
  const std::vector<int64_t> sizes = int_tuple(a[2]);
  const std::vector<int64_t> strides = int_tuple(a[3]);
  const int64_t offset = a[1]->i;
  if (sizes.size() != strides.size()) {
    fail("as many strides as sizes (" + std::to_string(sizes.size()) + ")",
         std::to_string(strides.size()));
  }
  // The view must lie inside its storage. set_ does not check this: our
  // storages are resizable, so set_ would silently grow one and the tensor
  // would read uninitialised memory. Overflow-safe: every term is bounded by
  // the storage size before it is added.
  const uint64_t item = at::elementSize(dtype);
  const uint64_t capacity = a[0]->storage.nbytes() / item;  // elements
  bool empty = false;
  uint64_t last = 0;  // index of the last element the view touches
  bool ok = offset >= 0 && uint64_t(offset) <= capacity;
  for (size_t i = 0; ok && i < sizes.size(); ++i) {
    if (sizes[i] < 0 || strides[i] < 0) {
      ok = false;
    } else if (sizes[i] == 0) {
      empty = true;
    } else if (uint64_t(sizes[i] - 1) > 0 &&
               uint64_t(strides[i]) > capacity / uint64_t(sizes[i] - 1)) {
      ok = false;
    } else {
      last += uint64_t(sizes[i] - 1) * uint64_t(strides[i]);
      ok = last <= capacity;
    }
  }
  if (!ok || (!empty && uint64_t(offset) + last >= capacity)) {
    fail("a tensor view inside its storage of " +
             std::to_string(a[0]->storage.nbytes()) + " bytes",
         "offset " + std::to_string(offset) + ", sizes " + tuple_str(sizes) +
             ", strides " + tuple_str(strides));
  }
  auto o = make_obj(PyObj::Kind::kTensor);
  o->tensor = at::empty({0}, at::TensorOptions().dtype(dtype))
                  .set_(a[0]->storage, offset, sizes, strides);
  return o;
}

}  // namespace

Obj unpickle(const uint8_t* data, size_t size, const std::string& where,
             const PersistentLoad& persistent_load) {
  return Unpickler(data, size, where, persistent_load).run();
}

}  // namespace peftcpp::models::detail
