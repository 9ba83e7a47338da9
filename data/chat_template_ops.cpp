// Operators, attribute/item access, str and dict methods, iteration.
#include <cmath>
#include <optional>
#include <stdexcept>

#include "common/error.h"
#include "data/chat_template_builtins.h"
#include "data/chat_template_text.h"
#include "data/tokenizer/unicode.h"

namespace peftcpp::data::jinja {

namespace {

[[noreturn]] void fail(std::string_view expected, std::string_view got) {
  throw std::runtime_error(error_message("chat_template", expected, got));
}

std::string describe_type(const Value& v) {
  return "'" + v.type_name() + "'";
}

// Python index normalization: negative counts from the end.
bool normalize_index(int64_t& i, int64_t size) {
  if (i < 0)
    i += size;
  return i >= 0 && i < size;
}

// Returned by value: callers pass temporaries as the fallback.
Value arg(const CallArgs& args, size_t i, const char* name,
          const Value& fallback) {
  if (i < args.positional.size())
    return args.positional[i];
  for (const auto& [k, v] : args.keyword) {
    if (k == name)
      return v;
  }
  return fallback;
}

Value str_method(const std::string& s, const std::string& name) {
  using Fn = Value (*)(const std::string&, const CallArgs&);
  static const std::vector<std::pair<std::string, Fn>> kMethods = {
      {"strip",
       [](const std::string& s, const CallArgs& a) {
         return Value::string(
             py_strip(s, arg(a, 0, "chars", Value::none()), true, true));
       }},
      {"lstrip",
       [](const std::string& s, const CallArgs& a) {
         return Value::string(
             py_strip(s, arg(a, 0, "chars", Value::none()), true, false));
       }},
      {"rstrip",
       [](const std::string& s, const CallArgs& a) {
         return Value::string(
             py_strip(s, arg(a, 0, "chars", Value::none()), false, true));
       }},
      {"startswith",
       [](const std::string& s, const CallArgs& a) {
         return Value::boolean(py_affix(s, arg(a, 0, "prefix", Value()), true));
       }},
      {"endswith",
       [](const std::string& s, const CallArgs& a) {
         return Value::boolean(
             py_affix(s, arg(a, 0, "suffix", Value()), false));
       }},
      {"split",
       [](const std::string& s, const CallArgs& a) {
         const Value max = arg(a, 1, "maxsplit", Value::integer(-1));
         return py_split(s, arg(a, 0, "sep", Value::none()),
                         max.is_number() ? max.as_int() : -1);
       }},
      {"upper", [](const std::string& s,
                   const CallArgs&) { return Value::string(py_upper(s)); }},
      {"lower", [](const std::string& s,
                   const CallArgs&) { return Value::string(py_lower(s)); }},
      {"title", [](const std::string& s,
                   const CallArgs&) { return Value::string(py_title(s)); }},
      {"capitalize",
       [](const std::string& s, const CallArgs&) {
         return Value::string(py_capitalize(s));
       }},
      {"replace",
       [](const std::string& s, const CallArgs& a) {
         const Value count = arg(a, 2, "count", Value::integer(-1));
         return Value::string(
             py_replace(s, to_str(arg(a, 0, "old", Value())),
                        to_str(arg(a, 1, "new", Value())),
                        count.is_number() ? count.as_int() : -1));
       }},
      {"find",
       [](const std::string& s, const CallArgs& a) {
         const size_t at = s.find(to_str(arg(a, 0, "sub", Value())));
         return Value::integer(
             at == std::string::npos
                 ? -1
                 : static_cast<int64_t>(
                       unicode::count_code_points(s.substr(0, at))));
       }},
      {"count",
       [](const std::string& s, const CallArgs& a) {
         const std::string sub = to_str(arg(a, 0, "sub", Value()));
         int64_t n = 0;
         if (sub.empty())
           return Value::integer(
               static_cast<int64_t>(unicode::count_code_points(s)) + 1);
         for (size_t at = s.find(sub); at != std::string::npos;
              at = s.find(sub, at + sub.size()))
           ++n;
         return Value::integer(n);
       }},
      {"join",
       [](const std::string& s, const CallArgs& a) {
         std::string out;
         bool first = true;
         for (const Value& item : iterate(arg(a, 0, "iterable", Value()))) {
           if (!item.is_string())
             fail("str items to join", "an item of type " + item.type_name());
           out += (first ? "" : s) + item.as_string();
           first = false;
         }
         return Value::string(std::move(out));
       }},
  };
  for (const auto& [n, fn] : kMethods) {
    if (n == name) {
      Fn f = fn;
      return Value::function("str." + name,
                             [s, f](const CallArgs& a) { return f(s, a); });
    }
  }
  return Value::undefined("'str object' has no attribute '" + name + "'");
}

Value dict_method(const Value& d, const std::string& name) {
  if (name == "items" || name == "keys" || name == "values") {
    return Value::function("dict." + name, [d, name](const CallArgs&) {
      List out;
      for (const auto& [k, v] : d.as_dict().items) {
        if (name == "items")
          out.push_back(Value::list({Value::string(k), v}, /*is_tuple=*/true));
        else
          out.push_back(name == "keys" ? Value::string(k) : v);
      }
      return Value::list(std::move(out));
    });
  }
  if (name == "get") {
    return Value::function("dict.get", [d](const CallArgs& a) {
      const Value key = arg(a, 0, "key", Value());
      const Value* v =
          key.is_string() ? d.as_dict().find(key.as_string()) : nullptr;
      return v != nullptr ? *v : arg(a, 1, "default", Value::none());
    });
  }
  return Value::undefined();
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0)))
    --q;
  return q;
}

[[noreturn]] void fail_operands(std::string_view op, const Value& a,
                                const Value& b) {
  fail("operands that support '" + std::string(op) + "'",
       describe_type(a) + " and " + describe_type(b));
}

Value arithmetic(std::string_view op, const Value& a, const Value& b) {
  const bool as_float =
      a.kind() == Value::Kind::kFloat || b.kind() == Value::Kind::kFloat;
  if (op == "/" || op == "//" || op == "%") {
    if (b.as_double() == 0)
      fail("a nonzero divisor", "division by zero");
  }
  if (op == "/")
    return Value::number(a.as_double() / b.as_double());
  if (op == "**") {
    if (!as_float && b.as_int() >= 0) {
      int64_t r = 1;
      for (int64_t i = 0; i < b.as_int(); ++i)
        r *= a.as_int();
      return Value::integer(r);
    }
    return Value::number(std::pow(a.as_double(), b.as_double()));
  }
  if (as_float) {
    const double x = a.as_double(), y = b.as_double();
    if (op == "+")
      return Value::number(x + y);
    if (op == "-")
      return Value::number(x - y);
    if (op == "*")
      return Value::number(x * y);
    if (op == "//")
      return Value::number(std::floor(x / y));
    double m = std::fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0)))
      m += y;
    return Value::number(m);
  }
  const int64_t x = a.as_int(), y = b.as_int();
  if (op == "+")
    return Value::integer(x + y);
  if (op == "-")
    return Value::integer(x - y);
  if (op == "*")
    return Value::integer(x * y);
  if (op == "//")
    return Value::integer(floor_div(x, y));
  return Value::integer(x - floor_div(x, y) * y);
}

Value repeat(const Value& seq, int64_t n) {
  if (seq.is_string()) {
    std::string out;
    for (int64_t i = 0; i < n; ++i)
      out += seq.as_string();
    return Value::string(std::move(out));
  }
  List out;
  for (int64_t i = 0; i < n; ++i)
    out.insert(out.end(), seq.as_list().begin(), seq.as_list().end());
  return Value::list(std::move(out), seq.is_tuple());
}

}  // namespace

void fail_undefined(const Value& v) {
  fail("a defined value", v.as_string().empty() ? "undefined" : v.as_string());
}

Value get_attr(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      fail_undefined(obj);
    case Value::Kind::kString:
      return str_method(obj.as_string(), name);
    case Value::Kind::kDict: {
      Value method = dict_method(obj, name);
      if (!method.is_undefined())
        return method;
      if (const Value* v = obj.as_dict().find(name))
        return *v;
      return Value::undefined("'dict object' has no attribute '" + name + "'");
    }
    case Value::Kind::kNamespace:
      if (const Value* v = obj.as_dict().find(name))
        return *v;
      break;
    default:
      break;
  }
  return Value::undefined("'" + obj.type_name() +
                          " object' has no attribute '" + name + "'");
}

Value get_item(const Value& obj, const Value& key) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      fail_undefined(obj);
    case Value::Kind::kList:
    case Value::Kind::kString:
      if (key.kind() == Value::Kind::kInt || key.kind() == Value::Kind::kBool) {
        int64_t i = key.as_int();
        if (obj.is_list()) {
          if (normalize_index(i, static_cast<int64_t>(obj.as_list().size())))
            return obj.as_list()[static_cast<size_t>(i)];
        } else {
          const auto cps = unicode::decode_utf8(obj.as_string());
          if (normalize_index(i, static_cast<int64_t>(cps.size()))) {
            std::string out;
            unicode::append_utf8(out, cps[static_cast<size_t>(i)]);
            return Value::string(std::move(out));
          }
        }
        return Value::undefined(obj.type_name() + " object has no element " +
                                std::to_string(key.as_int()));
      }
      break;
    case Value::Kind::kDict:
      if (key.is_string()) {
        if (const Value* v = obj.as_dict().find(key.as_string()))
          return *v;
      }
      break;
    default:
      break;
  }
  if (key.is_string())
    return get_attr(obj, key.as_string());
  return Value::undefined("'" + obj.type_name() + " object' has no attribute " +
                          to_repr(key));
}

Value slice_value(const Value& obj, const Value& start, const Value& stop,
                  const Value& step) {
  if (obj.is_undefined())
    fail_undefined(obj);
  if (!obj.is_list() && !obj.is_string())
    fail("a list or str to slice", "an object of type " + obj.type_name());
  auto bound = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_none() || v.is_undefined())
      return std::nullopt;
    if (v.kind() != Value::Kind::kInt && v.kind() != Value::Kind::kBool)
      fail(std::string("an int slice ") + what,
           "an object of type " + v.type_name());
    return v.as_int();
  };
  const int64_t st = bound(step, "step").value_or(1);
  if (st == 0)
    fail("a nonzero slice step", "0");
  std::vector<char32_t> cps;
  if (obj.is_string())
    cps = unicode::decode_utf8(obj.as_string());
  const int64_t n = obj.is_string()
                        ? static_cast<int64_t>(cps.size())
                        : static_cast<int64_t>(obj.as_list().size());
  // Python's PySlice_AdjustIndices.
  auto adjust = [&](std::optional<int64_t> v, int64_t dflt) {
    if (!v)
      return dflt;
    int64_t i = *v;
    if (i < 0) {
      i += n;
      if (i < 0)
        i = st < 0 ? -1 : 0;
    } else if (i >= n) {
      i = st < 0 ? n - 1 : n;
    }
    return i;
  };
  const int64_t lo = adjust(bound(start, "start"), st < 0 ? n - 1 : 0);
  const int64_t hi = adjust(bound(stop, "stop"), st < 0 ? -1 : n);
  List items;
  std::string text;
  for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) {
    if (obj.is_string())
      unicode::append_utf8(text, cps[static_cast<size_t>(i)]);
    else
      items.push_back(obj.as_list()[static_cast<size_t>(i)]);
  }
  return obj.is_string() ? Value::string(std::move(text))
                         : Value::list(std::move(items), obj.is_tuple());
}

Value binary_op(std::string_view op, const Value& a, const Value& b) {
  if (op == "~")
    return Value::string(to_str(a) + to_str(b));
  if (op == "==")
    return Value::boolean(equals(a, b));
  if (op == "!=")
    return Value::boolean(!equals(a, b));
  if (op == "in")
    return Value::boolean(contains(b, a));
  if (op == "not in")
    return Value::boolean(!contains(b, a));
  if (a.is_undefined())
    fail_undefined(a);
  if (b.is_undefined())
    fail_undefined(b);
  if (op == "<" || op == "<=" || op == ">" || op == ">=") {
    const int c = compare(a, b);
    if (op == "<")
      return Value::boolean(c < 0);
    if (op == "<=")
      return Value::boolean(c <= 0);
    if (op == ">")
      return Value::boolean(c > 0);
    return Value::boolean(c >= 0);
  }
  if (a.is_number() && b.is_number())
    return arithmetic(op, a, b);
  if (op == "+") {
    if (a.is_string() && b.is_string())
      return Value::string(a.as_string() + b.as_string());
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      List out = a.as_list();
      out.insert(out.end(), b.as_list().begin(), b.as_list().end());
      return Value::list(std::move(out), a.is_tuple());
    }
  }
  if (op == "*") {
    const bool a_seq = a.is_string() || a.is_list();
    const bool b_seq = b.is_string() || b.is_list();
    if (a_seq && b.kind() == Value::Kind::kInt)
      return repeat(a, b.as_int());
    if (b_seq && a.kind() == Value::Kind::kInt)
      return repeat(b, a.as_int());
  }
  fail_operands(op, a, b);
}

Value unary_op(std::string_view op, const Value& a) {
  if (a.is_undefined())
    fail_undefined(a);
  if (!a.is_number())
    fail("a number after unary '" + std::string(op) + "'", describe_type(a));
  if (op == "+")
    return a.kind() == Value::Kind::kBool ? Value::integer(a.as_int()) : a;
  if (a.kind() == Value::Kind::kFloat)
    return Value::number(-a.as_double());
  return Value::integer(-a.as_int());
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      if (!item.is_string())
        fail("a str on the left of 'in <str>'", describe_type(item));
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& v : container.as_list()) {
        if (equals(v, item))
          return true;
      }
      return false;
    case Value::Kind::kDict:
      return item.is_string() && container.as_dict().find(item.as_string());
    default:
      fail("a str, list or dict on the right of 'in'",
           describe_type(container));
  }
}

List iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return {};
    case Value::Kind::kList:
      return v.as_list();
    case Value::Kind::kDict: {
      List keys;
      for (const auto& kv : v.as_dict().items)
        keys.push_back(Value::string(kv.first));
      return keys;
    }
    case Value::Kind::kString: {
      List chars;
      for (char32_t cp : unicode::decode_utf8(v.as_string())) {
        std::string s;
        unicode::append_utf8(s, cp);
        chars.push_back(Value::string(std::move(s)));
      }
      return chars;
    }
    default:
      fail("an iterable (list, dict or str)", describe_type(v));
  }
}

int64_t length(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return 0;
    case Value::Kind::kString:
      return static_cast<int64_t>(unicode::count_code_points(v.as_string()));
    case Value::Kind::kList:
      return static_cast<int64_t>(v.as_list().size());
    case Value::Kind::kDict:
      return static_cast<int64_t>(v.as_dict().items.size());
    default:
      fail("a value with a length", describe_type(v));
  }
}

}  // namespace peftcpp::data::jinja
