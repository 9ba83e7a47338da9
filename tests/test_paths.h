#pragma once
// Where tests find their inputs: the reference files written by the Python
// fixture scripts (tests/fixtures/, run by CTest before the C++ tests), the
// shared real data (../shared) and the real MiniLM weights from the venv.

#include <filesystem>
#include <string>

namespace peftcpp::testing {

/// <build>/fixtures, or $PEFTCPP_FIXTURES when set.
std::filesystem::path fixture_dir();

/// <repo>/../shared, or $PEFTCPP_SHARED when set.
std::filesystem::path shared_dir();

/// A fresh, empty folder under the system temp folder, removed with
/// everything in it when the object goes out of scope (also when the test
/// case fails).
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// path() / name
  std::filesystem::path operator/(const std::string& name) const {
    return path_ / name;
  }

 private:
  std::filesystem::path path_;
};

/// The all-MiniLM-L6-v2 folder of the pip package, as the fixture scripts
/// found it (fixture_dir()/minilm_dir.txt).
std::filesystem::path minilm_dir();

/// The bytes of a file ("" when it cannot be read): for comparing outputs
/// byte for byte.
std::string read_file_bytes(const std::filesystem::path& path);

/// What a shell command printed (stdout and stderr together) and its exit
/// code (-1 when it did not exit normally).
struct CommandResult {
  int code = -1;
  std::string output;
};

/// Runs `command` with /bin/sh and collects its output.
CommandResult run_command(const std::string& command);

/// Runs a script of tests/fixtures with the venv's Python:
/// "<python> <source>/tests/fixtures/<script> <args>".
CommandResult run_fixture_script(const std::string& script,
                                 const std::string& args);

}  // namespace peftcpp::testing
