// jinja2's filters, tests and globals as transformers' environment has them
// (its own tojson, raise_exception, strftime_now, namespace, dict).
#include <algorithm>
#include <cmath>
#include <ctime>
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

// Argument `i` (or keyword `name`) of a call, or `fallback`.
// Returned by value: callers pass temporaries as the fallback.
Value arg(const CallArgs& a, size_t i, const char* name,
          const Value& fallback) {
  if (i < a.positional.size())
    return a.positional[i];
  for (const auto& [k, v] : a.keyword) {
    if (k == name)
      return v;
  }
  return fallback;
}

// Arguments from position `from` on, keywords dropped.
CallArgs rest(const CallArgs& a, size_t from) {
  CallArgs r;
  for (size_t i = from; i < a.positional.size(); ++i)
    r.positional.push_back(a.positional[i]);
  return r;
}

// "a.b.0": jinja's make_attrgetter path through items and attributes.
Value get_path(const Value& v, const Value& path) {
  if (!path.is_string())
    return get_item(v, path);
  Value out = v;
  const std::string& p = path.as_string();
  size_t from = 0;
  while (true) {
    const size_t dot = p.find('.', from);
    const std::string part = p.substr(from, dot - from);
    const bool digits =
        !part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
          return c >= '0' && c <= '9';
        });
    out = get_item(
        out, digits ? Value::integer(std::stoll(part)) : Value::string(part));
    if (dot == std::string::npos)
      return out;
    from = dot + 1;
  }
}

Value to_int(const Value& v, const Value& fallback) {
  switch (v.kind()) {
    case Value::Kind::kBool:
    case Value::Kind::kInt:
      return Value::integer(v.as_int());
    case Value::Kind::kFloat:
      return std::isfinite(v.as_double())
                 ? Value::integer(static_cast<int64_t>(v.as_double()))
                 : fallback;
    case Value::Kind::kString: {
      const std::string s = py_strip(v.as_string(), Value::none(), true, true);
      try {
        size_t used = 0;
        const int64_t i = std::stoll(s, &used);
        if (used == s.size())
          return Value::integer(i);
        size_t fused = 0;
        const double d = std::stod(s, &fused);
        if (fused == s.size() && std::isfinite(d))
          return Value::integer(static_cast<int64_t>(d));
      } catch (const std::exception&) {
      }
      return fallback;
    }
    default:
      return fallback;
  }
}

Value to_float(const Value& v, const Value& fallback) {
  if (v.is_number())
    return Value::number(v.as_double());
  if (v.is_string()) {
    const std::string s = py_strip(v.as_string(), Value::none(), true, true);
    try {
      size_t used = 0;
      const double d = std::stod(s, &used);
      if (used == s.size())
        return Value::number(d);
    } catch (const std::exception&) {
    }
  }
  return fallback;
}

Value filter_tojson(const Value& v, const CallArgs& a) {
  if (arg(a, 0, "ensure_ascii", Value::boolean(false)).truthy())
    fail("tojson(ensure_ascii=False) (transformers' default)",
         "ensure_ascii=True");
  const Value indent = arg(a, 1, "indent", Value::none());
  const Value separators = arg(a, 2, "separators", Value::none());
  const bool sort_keys = arg(a, 3, "sort_keys", Value::boolean(false)).truthy();
  const int ind = indent.is_none() ? -1 : static_cast<int>(indent.as_int());
  std::string item_sep = ind < 0 ? ", " : ",", key_sep = ": ";
  if (separators.is_list() && separators.as_list().size() == 2) {
    item_sep = to_str(separators.as_list()[0]);
    key_sep = to_str(separators.as_list()[1]);
  }
  return Value::string(to_json(v, ind, item_sep, key_sep, sort_keys));
}

Value filter_select(const Value& v, const CallArgs& a, bool by_attr,
                    bool keep) {
  List out;
  const size_t test_at = by_attr ? 1 : 0;
  const Value test = arg(a, test_at, "", Value::none());
  const CallArgs test_args = rest(a, test_at + 1);
  for (const Value& item : iterate(v)) {
    const Value subject =
        by_attr ? get_path(item, arg(a, 0, "", Value())) : item;
    const bool pass = test.is_string()
                          ? apply_test(test.as_string(), subject, test_args)
                          : subject.truthy();
    if (pass == keep)
      out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value filter_map(const Value& v, const CallArgs& a) {
  List out;
  const Value* attribute = nullptr;
  const Value* dflt = nullptr;
  for (const auto& [k, val] : a.keyword) {
    if (k == "attribute")
      attribute = &val;
    else if (k == "default")
      dflt = &val;
  }
  for (const Value& item : iterate(v)) {
    if (attribute != nullptr) {
      Value x = get_path(item, *attribute);
      out.push_back(x.is_undefined() && dflt != nullptr ? *dflt : x);
    } else {
      const Value name = arg(a, 0, "", Value());
      if (!name.is_string())
        fail("map(attribute=...) or map('<filter>')",
             "a first argument of type " + name.type_name());
      out.push_back(apply_filter(name.as_string(), item, rest(a, 1)));
    }
  }
  return Value::list(std::move(out));
}

Value filter_sort(const Value& v, const CallArgs& a) {
  List items = iterate(v);
  const bool reverse = arg(a, 0, "reverse", Value::boolean(false)).truthy();
  const bool case_sensitive =
      arg(a, 1, "case_sensitive", Value::boolean(false)).truthy();
  const Value attribute = arg(a, 2, "attribute", Value::none());
  auto key = [&](const Value& x) {
    Value k = attribute.is_none() ? x : get_path(x, attribute);
    return !case_sensitive && k.is_string()
               ? Value::string(py_lower(k.as_string()))
               : k;
  };
  std::stable_sort(items.begin(), items.end(),
                   [&](const Value& x, const Value& y) {
                     const int c = compare(key(x), key(y));
                     return reverse ? c > 0 : c < 0;
                   });
  return Value::list(std::move(items));
}

using Filter = Value (*)(const Value&, const CallArgs&);

const std::vector<std::pair<std::string_view, Filter>>& filters() {
  static const std::vector<std::pair<std::string_view, Filter>> kFilters = {
      {"trim",
       [](const Value& v, const CallArgs& a) {
         return Value::string(py_strip(
             to_str(v), arg(a, 0, "chars", Value::none()), true, true));
       }},
      {"length", [](const Value& v,
                    const CallArgs&) { return Value::integer(length(v)); }},
      {"count", [](const Value& v,
                   const CallArgs&) { return Value::integer(length(v)); }},
      {"upper",
       [](const Value& v, const CallArgs&) {
         return Value::string(py_upper(to_str(v)));
       }},
      {"lower",
       [](const Value& v, const CallArgs&) {
         return Value::string(py_lower(to_str(v)));
       }},
      {"title",
       [](const Value& v, const CallArgs&) {
         return Value::string(jinja_title(to_str(v)));
       }},
      {"capitalize",
       [](const Value& v, const CallArgs&) {
         return Value::string(py_capitalize(to_str(v)));
       }},
      {"tojson", filter_tojson},
      {"default",
       [](const Value& v, const CallArgs& a) {
         const bool boolean =
             arg(a, 1, "boolean", Value::boolean(false)).truthy();
         return v.is_undefined() || (boolean && !v.truthy())
                    ? arg(a, 0, "default_value", Value::string(""))
                    : v;
       }},
      {"join",
       [](const Value& v, const CallArgs& a) {
         const std::string sep = to_str(arg(a, 0, "d", Value::string("")));
         const Value attribute = arg(a, 1, "attribute", Value::none());
         std::string out;
         bool first = true;
         for (const Value& item : iterate(v)) {
           out +=
               (first ? "" : sep) +
               to_str(attribute.is_none() ? item : get_path(item, attribute));
           first = false;
         }
         return Value::string(std::move(out));
       }},
      {"first",
       [](const Value& v, const CallArgs&) {
         const List items = iterate(v);
         return items.empty() ? Value::undefined(
                                    "No first item, sequence "
                                    "was empty.")
                              : items.front();
       }},
      {"last",
       [](const Value& v, const CallArgs&) {
         const List items = iterate(v);
         return items.empty() ? Value::undefined(
                                    "No last item, sequence "
                                    "was empty.")
                              : items.back();
       }},
      {"string", [](const Value& v,
                    const CallArgs&) { return Value::string(to_str(v)); }},
      {"int",
       [](const Value& v, const CallArgs& a) {
         return to_int(v, arg(a, 0, "default", Value::integer(0)));
       }},
      {"float",
       [](const Value& v, const CallArgs& a) {
         return to_float(v, arg(a, 0, "default", Value::number(0.0)));
       }},
      {"replace",
       [](const Value& v, const CallArgs& a) {
         const Value count = arg(a, 2, "count", Value::none());
         return Value::string(
             py_replace(to_str(v), to_str(arg(a, 0, "old", Value())),
                        to_str(arg(a, 1, "new", Value())),
                        count.is_none() ? -1 : count.as_int()));
       }},
      {"selectattr",
       [](const Value& v, const CallArgs& a) {
         return filter_select(v, a, true, true);
       }},
      {"rejectattr",
       [](const Value& v, const CallArgs& a) {
         return filter_select(v, a, true, false);
       }},
      {"select",
       [](const Value& v, const CallArgs& a) {
         return filter_select(v, a, false, true);
       }},
      {"reject",
       [](const Value& v, const CallArgs& a) {
         return filter_select(v, a, false, false);
       }},
      {"map", filter_map},
      {"list",
       [](const Value& v, const CallArgs&) { return Value::list(iterate(v)); }},
      {"reverse",
       [](const Value& v, const CallArgs&) {
         if (v.is_string()) {
           auto cps = unicode::decode_utf8(v.as_string());
           std::reverse(cps.begin(), cps.end());
           return Value::string(unicode::encode_utf8(cps));
         }
         List items = iterate(v);
         std::reverse(items.begin(), items.end());
         return Value::list(std::move(items));
       }},
      {"items",
       [](const Value& v, const CallArgs&) {
         if (v.is_undefined())
           return Value::list({});
         if (!v.is_dict())
           fail("a dict for the items filter",
                "an object of type " + v.type_name());
         return get_attr(v, "items").as_function().call({});
       }},
      {"sort", filter_sort},
      {"safe", [](const Value& v, const CallArgs&) { return v; }},
      {"abs",
       [](const Value& v, const CallArgs&) {
         if (v.kind() == Value::Kind::kFloat)
           return Value::number(std::fabs(v.as_double()));
         const int64_t i = v.is_number()
                               ? v.as_int()
                               : (fail("a number for abs", v.type_name()), 0);
         return Value::integer(i < 0 ? -i : i);
       }},
  };
  return kFilters;
}

using Test = bool (*)(const Value&, const CallArgs&);

const std::vector<std::pair<std::string_view, Test>>& tests() {
  static const Value kMissing = Value::undefined("missing test argument");
  static const std::vector<std::pair<std::string_view, Test>> kTests = {
      {"defined",
       [](const Value& v, const CallArgs&) { return !v.is_undefined(); }},
      {"undefined",
       [](const Value& v, const CallArgs&) { return v.is_undefined(); }},
      {"none", [](const Value& v, const CallArgs&) { return v.is_none(); }},
      {"string", [](const Value& v, const CallArgs&) { return v.is_string(); }},
      {"number", [](const Value& v, const CallArgs&) { return v.is_number(); }},
      {"integer",
       [](const Value& v, const CallArgs&) {
         return v.kind() == Value::Kind::kInt;
       }},
      {"float",
       [](const Value& v, const CallArgs&) {
         return v.kind() == Value::Kind::kFloat;
       }},
      {"boolean",
       [](const Value& v, const CallArgs&) {
         return v.kind() == Value::Kind::kBool;
       }},
      {"true",
       [](const Value& v, const CallArgs&) {
         return v.kind() == Value::Kind::kBool && v.as_bool();
       }},
      {"false",
       [](const Value& v, const CallArgs&) {
         return v.kind() == Value::Kind::kBool && !v.as_bool();
       }},
      {"mapping", [](const Value& v, const CallArgs&) { return v.is_dict(); }},
      {"iterable",
       [](const Value& v, const CallArgs&) {
         return v.is_string() || v.is_list() || v.is_dict();
       }},
      {"sequence",
       [](const Value& v, const CallArgs&) {
         return v.is_string() || v.is_list() || v.is_dict();
       }},
      {"callable",
       [](const Value& v, const CallArgs&) {
         return v.kind() == Value::Kind::kFunction;
       }},
      {"odd",
       [](const Value& v, const CallArgs&) {
         return v.is_number() && (v.as_int() % 2 != 0);
       }},
      {"even",
       [](const Value& v, const CallArgs&) {
         return v.is_number() && (v.as_int() % 2 == 0);
       }},
      {"divisibleby",
       [](const Value& v, const CallArgs& a) {
         const int64_t n = arg(a, 0, "num", kMissing).as_int();
         return n != 0 && v.as_int() % n == 0;
       }},
      {"lower",
       [](const Value& v, const CallArgs&) {
         return v.is_string() && py_lower(v.as_string()) == v.as_string();
       }},
      {"upper",
       [](const Value& v, const CallArgs&) {
         return v.is_string() && py_upper(v.as_string()) == v.as_string();
       }},
      {"in",
       [](const Value& v, const CallArgs& a) {
         return contains(arg(a, 0, "seq", kMissing), v);
       }},
      {"eq",
       [](const Value& v, const CallArgs& a) {
         return equals(v, arg(a, 0, "other", kMissing));
       }},
      {"equalto",
       [](const Value& v, const CallArgs& a) {
         return equals(v, arg(a, 0, "other", kMissing));
       }},
      {"==",
       [](const Value& v, const CallArgs& a) {
         return equals(v, arg(a, 0, "other", kMissing));
       }},
      {"ne",
       [](const Value& v, const CallArgs& a) {
         return !equals(v, arg(a, 0, "other", kMissing));
       }},
      {"sameas",
       [](const Value& v, const CallArgs& a) {
         const Value o = arg(a, 0, "other", kMissing);
         return (v.is_none() && o.is_none()) ||
                (v.kind() == Value::Kind::kBool && o.kind() == v.kind() &&
                 v.as_bool() == o.as_bool());
       }},
      {"gt",
       [](const Value& v, const CallArgs& a) {
         return binary_op(">", v, arg(a, 0, "other", kMissing)).as_bool();
       }},
      {"ge",
       [](const Value& v, const CallArgs& a) {
         return binary_op(">=", v, arg(a, 0, "other", kMissing)).as_bool();
       }},
      {"lt",
       [](const Value& v, const CallArgs& a) {
         return binary_op("<", v, arg(a, 0, "other", kMissing)).as_bool();
       }},
      {"le",
       [](const Value& v, const CallArgs& a) {
         return binary_op("<=", v, arg(a, 0, "other", kMissing)).as_bool();
       }},
  };
  return kTests;
}

}  // namespace

bool has_filter(std::string_view name) {
  if (name == "d")
    return true;
  for (const auto& f : filters()) {
    if (f.first == name)
      return true;
  }
  return false;
}

bool has_test(std::string_view name) {
  for (const auto& t : tests()) {
    if (t.first == name)
      return true;
  }
  return false;
}

Value apply_filter(const std::string& name, const Value& v,
                   const CallArgs& args) {
  const std::string key = name == "d" ? "default" : name;
  for (const auto& [n, f] : filters()) {
    if (n == key)
      return f(v, args);
  }
  fail("a known filter", "'" + name + "'");
}

bool apply_test(const std::string& name, const Value& v, const CallArgs& args) {
  for (const auto& [n, t] : tests()) {
    if (n == name)
      return t(v, args);
  }
  fail("a known test", "'" + name + "'");
}

Value global_function(std::string_view name) {
  if (name == "raise_exception") {
    return Value::function("raise_exception", [](const CallArgs& a) -> Value {
      throw TemplateRaised(to_str(arg(a, 0, "message", Value())));
    });
  }
  if (name == "range") {
    return Value::function("range", [](const CallArgs& a) {
      int64_t start = 0, stop = 0, step = 1;
      const auto& p = a.positional;
      for (const Value& v : p) {
        if (v.kind() != Value::Kind::kInt && v.kind() != Value::Kind::kBool)
          fail("int arguments to range", "an object of type " + v.type_name());
      }
      if (p.size() == 1) {
        stop = p[0].as_int();
      } else if (p.size() >= 2) {
        start = p[0].as_int();
        stop = p[1].as_int();
        if (p.size() >= 3)
          step = p[2].as_int();
      } else {
        fail("1 to 3 arguments to range", "none");
      }
      if (step == 0)
        fail("a nonzero range step", "0");
      List out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
        out.push_back(Value::integer(i));
      return Value::list(std::move(out));
    });
  }
  if (name == "namespace" || name == "dict") {
    const bool ns = name == "namespace";
    return Value::function(std::string(name), [ns](const CallArgs& a) {
      Value out = ns ? Value::new_namespace() : Value::new_dict();
      for (const Value& p : a.positional) {
        if (!p.is_dict())
          fail("a dict as positional argument", p.type_name());
        for (const auto& [k, v] : p.as_dict().items)
          out.as_dict().set(k, v);
      }
      for (const auto& [k, v] : a.keyword)
        out.as_dict().set(k, v);
      return out;
    });
  }
  if (name == "strftime_now") {
    return Value::function("strftime_now", [](const CallArgs& a) {
      const std::time_t now = std::time(nullptr);
      std::tm local{};
      localtime_r(&now, &local);
      char buf[256];
      const size_t n =
          std::strftime(buf, sizeof(buf),
                        to_str(arg(a, 0, "format", Value())).c_str(), &local);
      return Value::string(std::string(buf, n));
    });
  }
  return Value::undefined("'" + std::string(name) + "' is undefined");
}

}  // namespace peftcpp::data::jinja
