#pragma once
// AdamW over the trainable parameters only, with transformers' rule for
// weight decay: no decay on biases and on normalization weights (by module
// type, here by the parameter's name ending: ".bias", LayerNorm / norm
// weights).

#include <torch/optim/adamw.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace peftcpp::trainers {

/// AdamW's knobs (transformers' TrainingArguments names and defaults).
struct AdamWSettings {
  double learning_rate = 5e-5;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_epsilon = 1e-8;
};

/// True for parameters that take no weight decay ("...bias",
/// "...LayerNorm.weight", "...norm.weight", "...ln_*.weight").
bool is_no_decay_parameter(const std::string& name);

/// AdamW with two parameter groups: group 0 decays, group 1 does not.
/// Throws std::invalid_argument for an empty list or a frozen parameter.
std::unique_ptr<torch::optim::AdamW> make_adamw(
    const std::vector<std::pair<std::string, at::Tensor>>& named_parameters,
    const AdamWSettings& settings);

/// Sets every group's learning rate to `lr`.
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace peftcpp::trainers
