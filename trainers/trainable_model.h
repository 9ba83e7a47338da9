#pragma once
// What the training loop needs from a model, whatever it is (an encoder
// with a head and adapters, a decoder-only model): its trainable
// parameters by stable name, logits for a batch, train/eval mode, and the
// deployable adapter folder.

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset/collate.h"

namespace peftcpp::trainers {

/// A model the Trainer can train.
class TrainableModel {
 public:
  virtual ~TrainableModel() = default;
  /// The parameters the optimizer updates (adapter + modules_to_save), with
  /// names that are stable across runs (checkpoints store them by name).
  virtual std::vector<std::pair<std::string, at::Tensor>>
  trainable_parameters() = 0;
  /// Logits [B, num_labels] (regression: [B, 1]); a causal LM's
  /// [B, T, vocab] (the Trainer takes the loss by the dataset's kind).
  virtual at::Tensor forward(const data::Batch& batch) = 0;
  /// Dropout on (training) or off (evaluation).
  virtual void set_training(bool training) = 0;
  /// Writes the adapter folder a user deploys (HF PEFT's format).
  virtual void save_adapter(const std::filesystem::path& dir) = 0;
};

}  // namespace peftcpp::trainers
