#pragma once
// The labels of the head an adapter was trained with. PEFT's adapter folder
// records the head's weights (modules_to_save) but not what its outputs
// mean, and a base checkpoint such as all-MiniLM-L6-v2 has no head at all;
// so peftcpp writes head_config.json beside the adapter (PEFT ignores extra
// files) and reads it back to rebuild the same head for predict, eval and
// merge.
//
//   {"architecture": "BertForSequenceClassification",
//    "id2label": {"0": "negative", "1": "positive"},
//    "problem_type": "single_label_classification"}

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "models/encoder/encoder_config.h"
#include "models/encoder/load_encoder.h"

namespace peftcpp::peft {

/// What head_config.json holds.
struct AdapterHead {
  std::string architecture;           ///< e.g. "BertForSequenceClassification"
  std::vector<std::string> id2label;  ///< in id order
  models::ProblemType problem_type = models::ProblemType::kUnset;
};

/// Writes `dir`/head_config.json for a model with `config`'s head.
void write_adapter_head(const std::filesystem::path& dir,
                        const models::EncoderConfig& config);

/// Reads `dir`/head_config.json; nullopt when the folder has none. Throws
/// std::runtime_error naming the file when it is malformed.
std::optional<AdapterHead> read_adapter_head(const std::filesystem::path& dir);

/// Load options that rebuild the head described by `head`.
void apply_adapter_head(const AdapterHead& head,
                        models::LoadEncoderOptions& options);

}  // namespace peftcpp::peft
