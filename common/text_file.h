#pragma once
// Reading a whole (small) text file, such as a JSON config, with the
// project's error message when it is missing or unreadable.

#include <filesystem>
#include <string>
#include <string_view>

namespace peftcpp {

/// The contents of `path`. Throws std::runtime_error
/// "[where] expected a readable file, got PATH (missing or unreadable)"
/// with `hint` when the file cannot be opened.
std::string read_text_file(const std::filesystem::path& path,
                           std::string_view where, std::string_view hint = {});

}  // namespace peftcpp
