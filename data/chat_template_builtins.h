#pragma once
// What chat templates can do with values, as Python and jinja2 do it in
// transformers' sandbox: operators, attribute and item access (with the
// str and dict methods templates call), iteration, and the filters, tests
// and global functions. Errors are std::runtime_error
// "[chat_template] expected ..., got ..."; the renderer adds the position.

#include <string>
#include <string_view>
#include <vector>

#include "data/chat_template_value.h"

namespace peftcpp::data::jinja {

/// Fails because `v` is undefined (its hint says which name).
[[noreturn]] void fail_undefined(const Value& v);

/// `obj.name`: attributes and methods first, then items (jinja getattr).
Value get_attr(const Value& obj, const std::string& name);
/// `obj[key]`: items first, then attributes for string keys (jinja getitem).
Value get_item(const Value& obj, const Value& key);
/// `obj[start:stop:step]` of a list or str (undefined bounds are None).
Value slice_value(const Value& obj, const Value& start, const Value& stop,
                  const Value& step);
/// `a op b` for + - * / // % ** ~ == != < <= > >= in, not in.
Value binary_op(std::string_view op, const Value& a, const Value& b);
/// `-a`, `+a`.
Value unary_op(std::string_view op, const Value& a);
/// `item in container`.
bool contains(const Value& container, const Value& item);
/// What a for loop visits: list items, dict keys, str characters; nothing
/// for undefined.
List iterate(const Value& v);
/// Python len().
int64_t length(const Value& v);

/// Whether a filter of that name exists (checked when parsing).
bool has_filter(std::string_view name);
/// Whether a test of that name exists (checked when parsing).
bool has_test(std::string_view name);
/// `v | name(args)`.
Value apply_filter(const std::string& name, const Value& v,
                   const CallArgs& args);
/// `v is name(args)`.
bool apply_test(const std::string& name, const Value& v, const CallArgs& args);
/// The global functions: range, dict, namespace, raise_exception,
/// strftime_now; undefined for other names.
Value global_function(std::string_view name);

/// Thrown by raise_exception('msg'): what() is msg, unchanged.
class TemplateRaised : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace peftcpp::data::jinja
