#pragma once
// Shared by predict and tokenize: options that decide how text becomes ids,
// and turning input lines (text or pre-tokenized ids) into encodings.

#include <optional>
#include <string>
#include <vector>

#include "cli/jsonl_input.h"
#include "data/tokenizer/encoding.h"
#include "data/tokenizer/tokenizer.h"

namespace CLI {
class App;
}

namespace peftcpp::cli {

/// Tokenization flags as given on the command line.
struct TokenizationFlags {
  std::optional<size_t> max_length;
  std::string truncation = "longest_first";
  bool no_special_tokens = false;
};

/// Adds --max-length, --truncation and --no-special-tokens to `cmd`.
void add_tokenization_flags(CLI::App& cmd, TokenizationFlags& flags);

/// The EncodeOptions these flags mean (no padding).
data::EncodeOptions to_encode_options(const TokenizationFlags& flags);

/// Throws std::invalid_argument unless `path` can be written as a file: its
/// folder exists and it is not itself a folder. Called before any work so a
/// bad --output fails at once, not after a long run.
void check_output_path(const std::string& path, const std::string& flag);

/// Encodes every line: text through `tokenizer` (all lines in one parallel
/// batch), input_ids as given (type ids zero unless given, mask all ones).
/// `tokenizer` may be null when every line is pre-tokenized.
std::vector<data::Encoding> encode_inputs(const data::Tokenizer* tokenizer,
                                          const std::vector<InputLine>& lines,
                                          const data::EncodeOptions& options,
                                          const std::string& input_name);

}  // namespace peftcpp::cli
