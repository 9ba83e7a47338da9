#include "data/chat_template_text.h"

#include <stdexcept>

#include <utf8proc.h>

#include "common/error.h"
#include "data/tokenizer/unicode.h"

namespace peftcpp::data::jinja {

namespace {

// Python's str.isspace.
bool py_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 ||
         c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

bool is_cased(char32_t c) {
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL ||
         cat == UTF8PROC_CATEGORY_LT;
}

char32_t upper(char32_t c) {
  return static_cast<char32_t>(
      utf8proc_toupper(static_cast<utf8proc_int32_t>(c)));
}
char32_t lower(char32_t c) {
  return static_cast<char32_t>(
      utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}
char32_t titlecase(char32_t c) {
  return static_cast<char32_t>(
      utf8proc_totitle(static_cast<utf8proc_int32_t>(c)));
}

template <typename F>
std::string map_chars(const std::string& s, F f) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : unicode::decode_utf8(s))
    unicode::append_utf8(out, f(c));
  return out;
}

}  // namespace

std::string py_strip(const std::string& s, const Value& chars, bool left,
                     bool right) {
  const auto cps = unicode::decode_utf8(s);
  std::vector<char32_t> set;
  const bool whitespace = chars.is_none() || chars.is_undefined();
  if (!whitespace) {
    if (!chars.is_string())
      throw std::runtime_error(error_message(
          "chat_template", "str or None as the characters to strip",
          "an object of type " + chars.type_name()));
    set = unicode::decode_utf8(chars.as_string());
  }
  auto strip = [&](char32_t c) {
    if (whitespace)
      return py_isspace(c);
    for (char32_t x : set) {
      if (x == c)
        return true;
    }
    return false;
  };
  size_t lo = 0, hi = cps.size();
  while (left && lo < hi && strip(cps[lo]))
    ++lo;
  while (right && hi > lo && strip(cps[hi - 1]))
    --hi;
  return unicode::encode_utf8(
      std::vector<char32_t>(cps.begin() + lo, cps.begin() + hi));
}

bool py_affix(const std::string& s, const Value& affix, bool start) {
  if (affix.is_list()) {
    for (const Value& a : affix.as_list()) {
      if (py_affix(s, a, start))
        return true;
    }
    return false;
  }
  if (!affix.is_string())
    throw std::runtime_error(
        error_message("chat_template",
                      std::string("a str or tuple of str for ") +
                          (start ? "startswith" : "endswith"),
                      "an object of type " + affix.type_name()));
  const std::string& a = affix.as_string();
  if (a.size() > s.size())
    return false;
  return start ? s.compare(0, a.size(), a) == 0
               : s.compare(s.size() - a.size(), a.size(), a) == 0;
}

Value py_split(const std::string& s, const Value& sep, int64_t maxsplit) {
  List out;
  if (sep.is_none() || sep.is_undefined()) {
    const auto cps = unicode::decode_utf8(s);
    size_t i = 0;
    while (true) {
      while (i < cps.size() && py_isspace(cps[i]))
        ++i;
      if (i == cps.size())
        break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        // The rest, trailing whitespace stripped, is the last piece.
        size_t end = cps.size();
        while (end > i && py_isspace(cps[end - 1]))
          --end;
        out.push_back(Value::string(unicode::encode_utf8(
            std::vector<char32_t>(cps.begin() + i, cps.begin() + end))));
        break;
      }
      size_t j = i;
      while (j < cps.size() && !py_isspace(cps[j]))
        ++j;
      out.push_back(Value::string(unicode::encode_utf8(
          std::vector<char32_t>(cps.begin() + i, cps.begin() + j))));
      i = j;
    }
    return Value::list(std::move(out));
  }
  if (!sep.is_string() || sep.as_string().empty())
    throw std::runtime_error(error_message(
        "chat_template", "a non-empty str or None as the split separator",
        sep.is_string() ? "an empty separator"
                        : "an object of type " + sep.type_name()));
  const std::string& d = sep.as_string();
  size_t from = 0;
  for (size_t at = s.find(d); at != std::string::npos; at = s.find(d, from)) {
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit)
      break;
    out.push_back(Value::string(s.substr(from, at - from)));
    from = at + d.size();
  }
  out.push_back(Value::string(s.substr(from)));
  return Value::list(std::move(out));
}

std::string py_replace(const std::string& s, const std::string& old_text,
                       const std::string& new_text, int64_t count) {
  std::string out;
  if (old_text.empty()) {
    // Python inserts `new` between characters (and at both ends).
    const auto cps = unicode::decode_utf8(s);
    int64_t done = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        out += new_text;
        ++done;
      }
      if (i < cps.size())
        unicode::append_utf8(out, cps[i]);
    }
    return out;
  }
  size_t from = 0;
  int64_t done = 0;
  for (size_t at = s.find(old_text); at != std::string::npos;
       at = s.find(old_text, from)) {
    if (count >= 0 && done == count)
      break;
    out.append(s, from, at - from);
    out += new_text;
    from = at + old_text.size();
    ++done;
  }
  out.append(s, from, std::string::npos);
  return out;
}

std::string py_upper(const std::string& s) {
  return map_chars(s, upper);
}

std::string py_lower(const std::string& s) {
  return map_chars(s, lower);
}

std::string py_title(const std::string& s) {
  bool previous_cased = false;
  return map_chars(s, [&](char32_t c) {
    const char32_t r = previous_cased ? lower(c) : titlecase(c);
    previous_cased = is_cased(c);
    return r;
  });
}

std::string py_capitalize(const std::string& s) {
  bool first = true;
  return map_chars(s, [&](char32_t c) {
    const char32_t r = first ? titlecase(c) : lower(c);
    first = false;
    return r;
  });
}

std::string jinja_title(const std::string& s) {
  bool word_start = true;
  return map_chars(s, [&](char32_t c) {
    const bool separator = c == '-' || c == '(' || c == '{' || c == '[' ||
                           c == '<' || py_isspace(c);
    const char32_t r = separator ? c : (word_start ? upper(c) : lower(c));
    word_start = separator;
    return r;
  });
}

}  // namespace peftcpp::data::jinja
