#include "common/atomic_file.h"

#include <unistd.h>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

#include "common/error.h"

namespace peftcpp {

namespace fs = std::filesystem;

void write_file_atomically(const fs::path& path,
                           const std::function<void(std::ostream&)>& write) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : ".";
  if (!fs::is_directory(dir)) {
    throw std::runtime_error(
        error_message("write_file_atomically", "an existing folder",
                      "'" + dir.string() + "'", "create the folder first"));
  }
  std::random_device rd;
  const fs::path tmp =
      dir / ("." + path.filename().string() + ".tmp" +
             std::to_string(getpid()) + "-" + std::to_string(rd()));
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) {
        throw std::runtime_error(
            error_message("write_file_atomically", "a writable file",
                          "'" + tmp.string() + "' that cannot be opened"));
      }
      write(out);
      out.flush();
      if (!out) {
        throw std::runtime_error(error_message(
            "write_file_atomically", "all bytes written",
            "a write error on '" + tmp.string() + "'", "is the disk full?"));
      }
    }
    fs::rename(tmp, path);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

}  // namespace peftcpp
