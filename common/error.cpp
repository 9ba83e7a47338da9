#include "common/error.h"

#include <algorithm>
#include <vector>

namespace peftcpp {

std::string error_message(std::string_view where, std::string_view expected,
                          std::string_view got, std::string_view hint) {
  std::string msg;
  msg.reserve(where.size() + expected.size() + got.size() + hint.size() + 32);
  msg += '[';
  msg += where;
  msg += "] expected ";
  msg += expected;
  msg += ", got ";
  msg += got;
  if (!hint.empty()) {
    msg += " (hint: ";
    msg += hint;
    msg += ')';
  }
  return msg;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  // One row of the dynamic-programming table at a time.
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

}  // namespace peftcpp
