#include "common/error.h"

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

}  // namespace peftcpp
