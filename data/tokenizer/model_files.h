#pragma once
// What commands and training read from a model that may be a Hugging
// Face folder or a GGUF file: the tokenizer, the chat template and the
// special tokens generation needs. (The weights load through
// models::load_decoder / load_encoder.)

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "data/tokenizer/tokenizer.h"

namespace peftcpp::data {

/// True for a path ending in .gguf.
bool is_gguf_path(const std::filesystem::path& path);

/// The tokenizer of a model folder (tokenizer.json, tokenizer.model or
/// vocab.txt) or of a GGUF file's metadata.
Tokenizer load_model_tokenizer(const std::filesystem::path& model);

/// Tokens and template for chat-style generation.
struct ChatFormat {
  /// The Jinja chat template (tokenizer_config.json "chat_template",
  /// chat_template.jinja, or GGUF tokenizer.chat_template), if the model
  /// ships one.
  std::optional<std::string> chat_template;
  std::string bos_token;
  std::string eos_token;
  /// Ids that end generation (eos of the config, the tokenizer's eos).
  std::vector<int64_t> stop_token_ids;
  /// Fills finished rows and left padding (pad, else eos).
  std::optional<int64_t> pad_token_id;
  /// The special ids the tokenizer files (or GGUF metadata) name, before
  /// any fallback; pad_id falls back to the model config's pad only.
  std::optional<int64_t> bos_id, eos_id, pad_id;
};

/// Reads the chat format of `model`; `config_eos` are the model config's
/// eos ids (joined with the tokenizer's).
ChatFormat read_chat_format(const std::filesystem::path& model,
                            const Tokenizer& tokenizer,
                            const std::vector<int64_t>& config_eos,
                            std::optional<int64_t> config_pad);

}  // namespace peftcpp::data
