#include "cli/encode_inputs.h"

#include <CLI/CLI.hpp>

#include <filesystem>
#include <stdexcept>

#include "common/error.h"

namespace peftcpp::cli {

void add_tokenization_flags(CLI::App& cmd, TokenizationFlags& flags) {
  cmd.add_option("--max-length", flags.max_length,
                 "Truncate inputs to this many tokens (special tokens "
                 "included); without it, over-long inputs are an error")
      ->check(CLI::PositiveNumber);
  cmd.add_option("--truncation", flags.truncation,
                 "How pairs are truncated with --max-length")
      ->check(CLI::IsMember({"longest_first", "only_first", "only_second"}));
  cmd.add_flag("--no-special-tokens", flags.no_special_tokens,
               "Do not add [CLS]/[SEP] (or the model's equivalents)");
}

data::EncodeOptions to_encode_options(const TokenizationFlags& flags) {
  data::EncodeOptions o;
  o.add_special_tokens = !flags.no_special_tokens;
  o.max_length = flags.max_length;
  if (!flags.max_length) {
    o.truncation = data::TruncationStrategy::kDoNotTruncate;
  } else if (flags.truncation == "only_first") {
    o.truncation = data::TruncationStrategy::kOnlyFirst;
  } else if (flags.truncation == "only_second") {
    o.truncation = data::TruncationStrategy::kOnlySecond;
  } else {
    o.truncation = data::TruncationStrategy::kLongestFirst;
  }
  return o;
}

void check_output_path(const std::string& path, const std::string& flag) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  if (fs::is_directory(p)) {
    throw std::invalid_argument(
        error_message(flag, "a file path", "the folder '" + path + "'"));
  }
  if (!fs::is_directory(dir)) {
    throw std::invalid_argument(
        error_message(flag, "a path in an existing folder",
                      "'" + path + "' (no folder '" + dir.string() + "')",
                      "create the folder first"));
  }
}

std::vector<data::Encoding> encode_inputs(const data::Tokenizer* tokenizer,
                                          const std::vector<InputLine>& lines,
                                          const data::EncodeOptions& options,
                                          const std::string& input_name) {
  std::vector<data::TextInput> texts;
  std::vector<size_t> text_rows;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].is_tokenized())
      continue;
    texts.push_back({lines[i].text, lines[i].text_pair});
    text_rows.push_back(i);
  }
  if (!texts.empty() && tokenizer == nullptr) {
    throw std::runtime_error(error_message(
        input_name + ":" + std::to_string(lines[text_rows.front()].line_number),
        "\"input_ids\" (the model folder has no tokenizer)", "\"text\"",
        "add tokenizer.json or vocab.txt to the model folder"));
  }
  std::vector<data::Encoding> out(lines.size());
  if (!texts.empty()) {
    std::vector<data::Encoding> encoded =
        tokenizer->encode_batch(texts, options);
    for (size_t k = 0; k < text_rows.size(); ++k)
      out[text_rows[k]] = std::move(encoded[k]);
  }
  for (size_t i = 0; i < lines.size(); ++i) {
    const InputLine& line = lines[i];
    if (!line.is_tokenized())
      continue;
    data::Encoding& e = out[i];
    e.ids = line.input_ids;
    e.type_ids = line.token_type_ids.empty()
                     ? std::vector<int64_t>(line.input_ids.size(), 0)
                     : line.token_type_ids;
    e.attention_mask.assign(line.input_ids.size(), 1);
    if (options.max_length && e.ids.size() > *options.max_length &&
        options.truncation != data::TruncationStrategy::kDoNotTruncate) {
      e.ids.resize(*options.max_length);
      e.type_ids.resize(*options.max_length);
      e.attention_mask.resize(*options.max_length);
    }
  }
  return out;
}

}  // namespace peftcpp::cli
