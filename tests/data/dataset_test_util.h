#pragma once
// Helpers shared by the dataset tests: files written into a scratch folder,
// the message of an expected exception, the real tokenizer.

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "data/tokenizer/tokenizer.h"
#include "tests/test_paths.h"

namespace peftcpp::testing {

/// Writes `bytes` to `path` exactly (no newline translation).
inline void write_bytes(const std::filesystem::path& path,
                        const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  REQUIRE(out.good());
}

/// The whole file.
inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// What `f` threw as an `E`; fails the test when it threw nothing or
/// another type.
template <typename E, typename F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("threw another exception type: " << e.what());
  }
  FAIL("threw nothing");
  return {};
}

/// The real all-MiniLM-L6-v2 tokenizer (a BERT WordPiece), loaded once.
inline const data::Tokenizer& minilm_tokenizer() {
  static const data::Tokenizer tokenizer =
      data::Tokenizer::from_pretrained(minilm_dir());
  return tokenizer;
}

/// ../shared/data/glue
inline std::filesystem::path glue_root() {
  return shared_dir() / "data" / "glue";
}

}  // namespace peftcpp::testing
