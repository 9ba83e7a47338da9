#include "common/text_file.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/error.h"

namespace peftcpp {

std::string read_text_file(const std::filesystem::path& path,
                           std::string_view where, std::string_view hint) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error(
        error_message(where, "a readable file",
                      path.string() + " (missing or unreadable)", hint));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace peftcpp
