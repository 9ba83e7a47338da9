#pragma once
// (IA)^3 (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is
// Better and Cheaper than In-Context Learning"), as HF PEFT's tuners/ia3:
// a learned vector per targeted Linear that rescales
//   its output (y = l * (W x + b), l: "<layer>.ia3_l.<name>" [out, 1]) or,
//   for feed-forward modules, its input (y = W (l * x) + b, l: [1, in]).
// Initialised to ones (the identity); merges into W (and b) by scaling.

#include <memory>
#include <string>
#include <vector>

#include "peft/adapter.h"
#include "peft/adapter_config.h"

namespace peftcpp::peft {

/// PEFT's default (IA)^3 targets and feed-forward modules by model_type.
/// Throws std::invalid_argument for a model type without defaults.
std::vector<std::string> default_ia3_targets(const std::string& model_type);
std::vector<std::string> default_ia3_feedforward(const std::string& model_type);

/// Adds (IA)^3 adapter `name` to the targeted Linear layers of `ctx.root`.
/// Empty target_modules / feedforward_modules are filled with the defaults.
/// Throws std::invalid_argument when feedforward_modules is not a subset of
/// target_modules (both lists) or nothing is targeted.
std::unique_ptr<Adapter> add_ia3(const AdapterContext& ctx,
                                 const std::string& name, Ia3Config& config);

}  // namespace peftcpp::peft
