#pragma once
// Error messages in one shape across the library:
//   "[where] expected <expected>, got <got> (hint: <hint>)"
// so a user reading a failure knows the place, the rule and the offending
// value.

#include <iterator>
#include <string>
#include <string_view>

namespace peftcpp {

/// Builds "[where] expected ..., got ..." with an optional "(hint: ...)".
std::string error_message(std::string_view where, std::string_view expected,
                          std::string_view got, std::string_view hint = {});

/// Levenshtein distance between two names: "did you mean" hints for a
/// mistyped key.
size_t edit_distance(std::string_view a, std::string_view b);

/// Joins a list of names for a message, eliding the middle of long lists.
template <typename Range>
std::string join_names(const Range& names, std::string_view sep = ", ",
                       size_t max_items = 12) {
  std::string out;
  const size_t total = std::size(names);
  size_t i = 0;
  for (const auto& n : names) {
    if (i == max_items) {
      out += std::string(sep) + "... (" + std::to_string(total - max_items) +
             " more)";
      break;
    }
    if (i > 0)
      out += sep;
    out += n;
    ++i;
  }
  return out;
}

}  // namespace peftcpp
