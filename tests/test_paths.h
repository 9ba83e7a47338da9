#pragma once
// Where tests find their inputs: the reference files written by the Python
// fixture scripts (tests/fixtures/, run by CTest before the C++ tests), the
// shared real data (../shared) and the real MiniLM weights from the venv.

#include <filesystem>

namespace peftcpp::testing {

/// <build>/fixtures, or $PEFTCPP_FIXTURES when set.
std::filesystem::path fixture_dir();

/// <repo>/../shared, or $PEFTCPP_SHARED when set.
std::filesystem::path shared_dir();

/// The all-MiniLM-L6-v2 folder of the pip package, as the fixture scripts
/// found it (fixture_dir()/minilm_dir.txt).
std::filesystem::path minilm_dir();

}  // namespace peftcpp::testing
