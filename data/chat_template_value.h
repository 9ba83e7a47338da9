#pragma once
// The values a chat template computes with, behaving as the Python objects
// Jinja hands around in transformers' sandbox: None, bool, int, float, str,
// list/tuple, dict (insertion ordered), namespace, callables and Jinja's
// default Undefined (prints as "", is falsy, fails when used further).
// Printing follows Python's str()/repr() and json.dumps, so rendered text
// matches transformers byte for byte.
//
// Lists and dicts are shared, never copied: the sandbox is immutable
// (list.append, dict.update are refused), so only namespaces, which a
// template creates itself, are ever written to.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace peftcpp::data::jinja {

class Value;
struct Dict;
struct Function;

/// Python list (or tuple) contents.
using List = std::vector<Value>;

/// Arguments of a call: positional, then keyword in source order.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

/// A template value; cheap to copy (containers are shared).
class Value {
 public:
  enum class Kind {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kNamespace,
    kFunction
  };

  /// Undefined; `hint` says why ("'x' is undefined") for the error raised
  /// when it is used beyond printing and testing.
  static Value undefined(std::string hint = {});
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double d);
  static Value string(std::string s);
  static Value list(List items, bool is_tuple = false);
  static Value dict(std::shared_ptr<Dict> d);
  static Value new_dict();
  static Value new_namespace();
  static Value function(std::string name,
                        std::function<Value(const CallArgs&)> call);

  Value() = default;

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  /// int, float or bool (Python's bool is an int).
  bool is_number() const {
    return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool;
  }
  bool is_tuple() const { return is_tuple_; }

  bool as_bool() const { return bool_; }
  /// The integer of an int or bool.
  int64_t as_int() const { return kind_ == Kind::kBool ? bool_ : int_; }
  /// The number of an int, float or bool as a double.
  double as_double() const;
  /// String contents, or the undefined hint.
  const std::string& as_string() const { return str_; }
  const List& as_list() const { return *list_; }
  /// The dict of a dict or namespace.
  Dict& as_dict() const { return *dict_; }
  const Function& as_function() const { return *fn_; }

  /// Python truthiness (undefined is falsy).
  bool truthy() const;
  /// Python type name for messages ("str", "list", "undefined").
  std::string type_name() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool bool_ = false;
  bool is_tuple_ = false;
  int64_t int_ = 0;
  double float_ = 0;
  std::string str_;
  std::shared_ptr<const List> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<const Function> fn_;
};

/// Python dict with string keys, in insertion order.
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  /// The value under `key`, or nullptr.
  const Value* find(std::string_view key) const;
  /// Inserts or replaces, keeping the first insertion's position.
  void set(const std::string& key, Value value);
};

/// A callable: a global (range, namespace), a bound method or a macro.
struct Function {
  std::string name;
  std::function<Value(const CallArgs&)> call;
};

/// Python str(): what `{{ v }}` prints ("" for undefined).
std::string to_str(const Value& v);
/// Python repr() (lists print their items with it).
std::string to_repr(const Value& v);
/// Python float.__repr__: shortest round-trip digits ("0.5", "1e+20").
std::string format_float(double d);

/// json.dumps(v, ensure_ascii=False, indent=indent, separators=...,
/// sort_keys=...): transformers' tojson filter. `indent` < 0 means None.
std::string to_json(const Value& v, int indent, std::string_view item_sep,
                    std::string_view key_sep, bool sort_keys);
/// Converts JSON input (messages, extra variables) to a value.
Value from_json(const nlohmann::json& j);

/// Python ==.
bool equals(const Value& a, const Value& b);
/// Python <, <=, >, >= as a three-way result; throws for unorderable types.
int compare(const Value& a, const Value& b);

}  // namespace peftcpp::data::jinja
