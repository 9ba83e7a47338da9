#pragma once
// Prompt tuning's TEXT initialisation: the token ids whose word embeddings
// start the virtual tokens (PEFT's PromptEmbedding with
// prompt_tuning_init="TEXT").

#include <cstdint>
#include <vector>

#include "peft/adapter_config.h"

namespace peftcpp::peft {

/// PEFT's TEXT init ids: tokenizer(init_text)["input_ids"] (special tokens
/// included, as the tokenizer's __call__ adds them), cut to `total` or
/// repeated ceil(total / n) times and cut. Throws std::invalid_argument for
/// a missing text or tokenizer folder, a text without tokens, or ids at or
/// above `vocab` (a tokenizer of another model).
std::vector<int64_t> prompt_init_text_ids(const PromptTuningConfig& c,
                                          int64_t total, int64_t vocab);

}  // namespace peftcpp::peft
