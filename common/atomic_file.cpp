#include "common/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

#include "common/error.h"

namespace peftcpp {

namespace fs = std::filesystem;

namespace {
// Flushes the file's data to the disk, so that after the rename the final
// name never points at a file whose bytes were lost in a crash.
void sync_file(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}
}  // namespace

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
    sync_file(tmp);
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) {
      throw std::runtime_error(
          error_message("write_file_atomically",
                        "'" + path.string() + "' replaceable by a file",
                        ec.message(), "is it a folder, or read-only?"));
    }
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

}  // namespace peftcpp
