#pragma once
// config.json of a BERT-family encoder (BERT, RoBERTa, MiniLM checkpoints
// that are `bert`), with transformers' field names and defaults.

#include <nlohmann/json_fwd.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "models/layers/activation.h"

namespace peftcpp::models {

/// What the loss of a sequence classification head is (transformers'
/// `problem_type`; inferred from num_labels and the labels when unset).
enum class ProblemType {
  kUnset,
  kRegression,                 ///< num_labels == 1, MSE
  kSingleLabelClassification,  ///< cross-entropy over num_labels
  kMultiLabelClassification,   ///< BCE-with-logits per label
};

/// The encoder families we implement; they differ in position ids and head.
enum class EncoderFamily {
  kBert,     ///< "bert": absolute positions 0..T-1, pooler + linear head
  kRoberta,  ///< "roberta": positions from padding_idx+1, dense-tanh head
};

/// config.json of a `bert` or `roberta` model.
struct EncoderConfig {
  EncoderFamily family = EncoderFamily::kBert;
  std::string model_type = "bert";  ///< as written in config.json
  std::vector<std::string> architectures;

  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  Activation hidden_act = Activation::kGelu;
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  double initializer_range = 0.02;
  int64_t pad_token_id = 0;
  std::optional<double> classifier_dropout;

  /// Labels of a classification head: id2label in id order.
  std::vector<std::string> id2label;
  ProblemType problem_type = ProblemType::kUnset;
  /// The dtype the checkpoint was saved in ("float32", "bfloat16", ...).
  std::string torch_dtype = "float32";

  int64_t num_labels() const { return static_cast<int64_t>(id2label.size()); }
  int64_t head_dim() const { return hidden_size / num_attention_heads; }

  /// "bert" or "roberta": the name HF gives the encoder inside a model with a
  /// head (`bert.encoder.layer.0...`), i.e. transformers' base_model_prefix.
  std::string base_model_prefix() const;

  /// Longest input the position table allows (RoBERTa loses padding_idx+1).
  int64_t max_sequence_length() const;

  /// True when config.architectures names a ...ForSequenceClassification.
  bool has_sequence_classification_head() const;

  /// Parses config.json content; `source` names it in error messages.
  static EncoderConfig from_json(const nlohmann::json& j,
                                 const std::string& source);

  /// Reads and parses `path` (a config.json, or a folder holding one).
  static EncoderConfig from_file(const std::filesystem::path& path);

  /// Serialises back to config.json form (the fields above).
  nlohmann::json to_json() const;
};

/// Parses "regression" / "single_label_classification" /
/// "multi_label_classification".
ProblemType parse_problem_type(const std::string& name);
std::string problem_type_name(ProblemType type);

}  // namespace peftcpp::models
