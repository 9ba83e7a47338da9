#pragma once
// Helpers shared by the checkpoint tests (test_checkpoint.cpp,
// test_torch_bin.cpp).

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

#include "tests/test_paths.h"

namespace peftcpp::testing {

/// A file written by tests/fixtures/make_checkpoint.py.
inline std::filesystem::path checkpoint_fixture(const std::string& name) {
  return fixture_dir() / "checkpoint" / name;
}

/// A file's bytes.
inline std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// The message of the std::runtime_error `f` throws; fails the test if it
/// throws none.
template <typename F>
std::string runtime_error_of(F&& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  FAIL("expected a std::runtime_error");
  return "";
}

}  // namespace peftcpp::testing
