#pragma once
// Input files of `predict` and `tokenize`: JSON Lines, one object per line,
//   {"text": "...", "text_pair": "..."}   (text_pair optional)
//   {"input_ids": [101, 2023, ...]}       (already tokenized)
// Blank lines are skipped; anything else that is not such an object is an
// error naming the file and line.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace peftcpp::cli {

/// One line of an input file.
struct InputLine {
  size_t line_number = 0;  ///< 1-based, for messages
  std::string text;
  std::optional<std::string> text_pair;
  std::vector<int64_t> input_ids;  ///< non-empty for pre-tokenized lines
  std::vector<int64_t> token_type_ids;

  bool is_tokenized() const { return !input_ids.empty(); }
};

/// Reads and validates every line; throws std::runtime_error on the first
/// bad one ("[FILE:LINE] expected ..., got ...").
std::vector<InputLine> read_jsonl_inputs(const std::filesystem::path& path);

}  // namespace peftcpp::cli
