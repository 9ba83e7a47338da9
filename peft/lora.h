#pragma once
// LoRA (Hu et al. 2021) with rsLoRA (Kalajdzievski 2023) and DoRA (Liu et
// al. 2024) scaling, as HF PEFT's tuners/lora computes it, attached to
// models::Linear layers as a hook:
//   y = W x + b + scaling * B A dropout(x),  scaling = alpha / r
//                                            (rsLoRA: alpha / sqrt(r))
//   DoRA: y = m / ||W + s B A||_row * (W x + s B A x) + b, the norm detached
// Parameters: "<layer>.lora_A.<name>.weight" [r, in], "<layer>.lora_B.<name>
// .weight" [out, r] (+ ".bias" with lora_bias), DoRA "<layer>
// .lora_magnitude_vector.<name>" [out]. Our Linear always stores W as
// [out, in], so fan_in_fan_out (GPT-2's Conv1D layout) changes nothing here.

#include <memory>
#include <string>

#include "peft/adapter.h"
#include "peft/adapter_config.h"

namespace peftcpp::peft {

/// The modules LoRA targets when target_modules is empty, by model_type
/// (PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). Throws
/// std::invalid_argument for a model type without defaults.
std::vector<std::string> default_lora_targets(const std::string& model_type);

/// Adds LoRA adapter `name` to every Linear of `ctx.root` the config
/// targets. `config.target_modules` is filled with the default when empty
/// (so the saved config names them). Throws std::invalid_argument for bad
/// options (r < 1, unknown bias policy, DoRA with lora_bias, no target).
std::unique_ptr<Adapter> add_lora(const AdapterContext& ctx,
                                  const std::string& name, LoraConfig& config);

}  // namespace peftcpp::peft
