#include "tests/test_paths.h"

#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

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

}  // namespace peftcpp::testing
