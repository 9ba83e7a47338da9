#pragma once
// Python's str methods on UTF-8 text, as chat templates call them
// (message['content'].strip(), .split('</think>'), .title(), ...).
// Case mapping is utf8proc's simple one (Python also maps 'ß' to "SS").

#include <cstdint>
#include <string>

#include "data/chat_template_value.h"

namespace peftcpp::data::jinja {

/// str.strip / lstrip / rstrip; `chars` None or undefined means whitespace.
std::string py_strip(const std::string& s, const Value& chars, bool left,
                     bool right);
/// str.startswith (start) / endswith; `affix` is a str or a tuple of str.
bool py_affix(const std::string& s, const Value& affix, bool start);
/// str.split(sep, maxsplit): a list of str; None splits on whitespace runs.
Value py_split(const std::string& s, const Value& sep, int64_t maxsplit);
/// str.replace(old, new, count); count < 0 replaces all.
std::string py_replace(const std::string& s, const std::string& old_text,
                       const std::string& new_text, int64_t count);
/// str.upper / str.lower.
std::string py_upper(const std::string& s);
std::string py_lower(const std::string& s);
/// str.title: a letter after a non-letter is upper-cased, others lowered.
std::string py_title(const std::string& s);
/// str.capitalize: first character upper-cased, the rest lowered.
std::string py_capitalize(const std::string& s);
/// jinja's title filter: words start after '-', whitespace, '(', '{', '['
/// or '<'.
std::string jinja_title(const std::string& s);

}  // namespace peftcpp::data::jinja
