#include "peft/prompt_tuning_text.h"

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

#include "common/error.h"
#include "data/tokenizer/tokenizer.h"

namespace peftcpp::peft {
namespace {

std::string quoted(const std::string& s) {
  return "\"" + s + "\"";
}

}  // namespace

std::vector<int64_t> prompt_init_text_ids(const PromptTuningConfig& c,
                                          int64_t total, int64_t vocab) {
  constexpr const char* where = "add_prompt_tuning";
  if (c.prompt_tuning_init_text.empty()) {
    throw std::invalid_argument(error_message(
        where, "prompt_tuning_init_text for prompt_tuning_init TEXT", "none"));
  }
  if (c.tokenizer_name_or_path.empty()) {
    throw std::invalid_argument(error_message(
        where,
        "tokenizer_name_or_path (a tokenizer folder) for prompt_tuning_init "
        "TEXT",
        "none"));
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(c.tokenizer_name_or_path, ec)) {
    throw std::invalid_argument(error_message(
        where, "tokenizer_name_or_path naming a tokenizer folder",
        quoted(c.tokenizer_name_or_path) + " (no such folder)",
        "Hub names are not downloaded; pass the folder that holds "
        "tokenizer.json or vocab.txt"));
  }
  const auto tokenizer =
      data::Tokenizer::from_pretrained(c.tokenizer_name_or_path);
  const data::Encoding enc = tokenizer.encode(c.prompt_tuning_init_text);
  const std::vector<int64_t>& text_ids = enc.ids;
  if (text_ids.empty()) {
    throw std::invalid_argument(error_message(
        where, "prompt_tuning_init_text that tokenizes to at least one token",
        quoted(c.prompt_tuning_init_text) + " (no tokens)"));
  }
  for (size_t i = 0; i < text_ids.size(); ++i) {
    if (text_ids[i] < 0 || text_ids[i] >= vocab) {
      throw std::invalid_argument(error_message(
          where,
          "token ids of prompt_tuning_init_text below the model's vocabulary "
          "size " +
              std::to_string(vocab),
          "id " + std::to_string(text_ids[i]) + " (" + quoted(enc.tokens[i]) +
              ") from the tokenizer in " + quoted(c.tokenizer_name_or_path),
          "the tokenizer does not belong to this model"));
    }
  }
  std::vector<int64_t> ids;
  ids.reserve(static_cast<size_t>(total));
  while (static_cast<int64_t>(ids.size()) < total) {
    for (const int64_t id : text_ids) {
      if (static_cast<int64_t>(ids.size()) == total)
        break;
      ids.push_back(id);
    }
  }
  return ids;
}

}  // namespace peftcpp::peft
