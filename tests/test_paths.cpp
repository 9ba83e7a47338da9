#include "tests/test_paths.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

namespace peftcpp::testing {

namespace fs = std::filesystem;

namespace {
fs::path from_env_or(const char* var, const char* fallback) {
  const char* v = std::getenv(var);
  return fs::path(v != nullptr && *v != '\0' ? v : fallback);
}
}  // namespace

fs::path fixture_dir() {
  return from_env_or("PEFTCPP_FIXTURES", PEFTCPP_DEFAULT_FIXTURE_DIR);
}

fs::path shared_dir() {
  return from_env_or("PEFTCPP_SHARED", PEFTCPP_DEFAULT_SHARED_DIR);
}

ScratchDir::ScratchDir(const std::string& name) {
  std::random_device rd;
  path_ = fs::temp_directory_path() /
          ("peftcpp-" + name + "-" + std::to_string(getpid()) + "-" +
           std::to_string(rd()));
  fs::remove_all(path_);
  fs::create_directories(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

fs::path minilm_dir() {
  const fs::path note = fixture_dir() / "minilm_dir.txt";
  std::ifstream in(note);
  std::string dir;
  if (!in || !std::getline(in, dir) || dir.empty()) {
    throw std::runtime_error("[tests] expected " + note.string() +
                             " written by tests/fixtures/generate_all.py, got "
                             "nothing (hint: run the tests through ctest)");
  }
  return fs::path(dir);
}

CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr)
    return r;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0)
    r.output.append(buf.data(), n);
  const int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

CommandResult run_fixture_script(const std::string& script,
                                 const std::string& args) {
  return run_command(std::string("'") + PEFTCPP_PYTHON_PATH + "' '" +
                     PEFTCPP_SOURCE_DIR + "/tests/fixtures/" + script + "' " +
                     args);
}

std::string read_file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace peftcpp::testing
