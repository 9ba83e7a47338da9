#pragma once
// Writing files so that a crash or an error never leaves a half-written file
// under the final name: the bytes go to a temporary file in the same folder,
// which is flushed and renamed over the target (rename is atomic on POSIX).

#include <filesystem>
#include <functional>
#include <ostream>

namespace peftcpp {

/// Calls `write(stream)` on a temporary file beside `path`, then renames it to
/// `path`. On any exception the temporary file is removed and the target is
/// left as it was.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(std::ostream&)>& write);

}  // namespace peftcpp
