#pragma once
// Labelled text examples as read from a file, before tokenization: a
// sequence or a pair per example and a label that is a class (index into
// label_names) or a real value (regression, STS-B). No LibTorch here.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace peftcpp::data {

/// What the label of a task is.
enum class TaskKind {
  kClassification,  ///< label = class index, cross-entropy
  kRegression,      ///< label = real value, MSE
  /// Per-token targets (instruction data, data/dataset/instruction_dataset.h):
  /// token_type_ids 1 marks the tokens to predict; next-token cross-entropy.
  kCausalLM,
};

/// One example. `label` is the class index (as a float) for classification
/// or the target value for regression; NaN for an unlabelled example (a
/// GLUE test file).
struct Example {
  std::string text;
  std::optional<std::string> text_pair;
  float label = 0.0f;
};

/// A list of examples and what their labels mean.
struct LabeledDataset {
  std::vector<Example> examples;
  TaskKind kind = TaskKind::kClassification;
  /// Classification: the class names in index order ("0", "1" or
  /// "entailment", "not_entailment"). Empty for regression.
  std::vector<std::string> label_names;
  /// The file the examples came from (messages, cache keys).
  std::filesystem::path source;

  size_t size() const { return examples.size(); }
  bool has_pairs() const {
    return !examples.empty() && examples.front().text_pair.has_value();
  }
  int64_t num_labels() const {
    return kind == TaskKind::kRegression
               ? 1
               : static_cast<int64_t>(label_names.size());
  }
};

/// Keeps the first `n` examples (n < 0 keeps all): documented subsets.
void keep_first(LabeledDataset& dataset, int64_t n);

}  // namespace peftcpp::data
