#pragma once
// AdamW over the trainable parameters only, with transformers' rule for
// weight decay: no decay on biases and on normalization weights (by module
// type, here by the parameter's name ending: ".bias", LayerNorm / norm
// weights).

#include <torch/optim/adamw.h>

#include <iosfwd>
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
/// transformers' Trainer.get_decay_parameter_names decides by name pattern
/// (lower-cased: "bias", "layernorm", "rmsnorm", a "norm" or "*_norm" path
/// segment) and by module type (every parameter inside an nn.LayerNorm);
/// names alone cannot see types, so the LayerNorms of our trees whose names
/// escape the patterns are matched by name: "ln" / "ln_*" segments (GPT-2)
/// and "*_norm_*" / "norm_*" segments (AdapterHub's adapter_norm_before).
bool is_no_decay_parameter(const std::string& name);

/// AdamW with two parameter groups: group 0 decays, group 1 does not
/// (either may be empty), each in the order of `named_parameters`. Throws
/// std::invalid_argument for an empty list, a frozen, undefined, non-leaf or
/// repeated parameter, and for settings AdamW refuses (negative learning
/// rate, epsilon or weight decay; betas outside [0, 1)).
std::unique_ptr<torch::optim::AdamW> make_adamw(
    const std::vector<std::pair<std::string, at::Tensor>>& named_parameters,
    const AdamWSettings& settings);

/// Sets every group's learning rate to `lr` (the scheduler's peak lr times
/// lr_factor); std::invalid_argument for a negative or non-finite lr.
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

/// Writes the optimizer's state (per-parameter moments and step counts,
/// every group's options) in LibTorch's archive format, as torch::save.
void save_optimizer_state(const torch::optim::Optimizer& optimizer,
                          std::ostream& stream);

/// Reads what save_optimizer_state wrote into an optimizer over the same
/// parameter groups (same group count, sizes and order; parameters matched
/// by position). AdamW moments must have their parameters' shapes. Throws
/// std::runtime_error saying what did not fit; the optimizer is then
/// unchanged. Continuing from the loaded state is bitwise identical to not
/// having stopped.
void load_optimizer_state(torch::optim::Optimizer& optimizer,
                          std::istream& stream);

}  // namespace peftcpp::trainers
