#pragma once
// The per-layer containers PEFT methods keep their adapters in, named as in
// HF PEFT: a layer with LoRA adapters "a" and "b" has children "lora_A" and
// "lora_B" holding modules "a" and "b" (parameters "...query.lora_A.a.weight"),
// (IA)^3 a child "ia3_l" holding parameters "a", "b" ("...key.ia3_l.a").
// The container is created with the first adapter and removed with the last,
// so a model without adapters has exactly its base parameters.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <memory>
#include <string>

namespace peftcpp::peft {

/// The child `container` of `owner`, created (empty) if it does not exist.
std::shared_ptr<torch::nn::Module> container_of(torch::nn::Module& owner,
                                                const std::string& container);

/// Registers `module` as `name` in `owner`'s child `container`.
void add_to_container(torch::nn::Module& owner, const std::string& container,
                      const std::string& name,
                      std::shared_ptr<torch::nn::Module> module);

/// Registers the parameter `name` in `owner`'s child `container`; returns
/// the registered tensor.
at::Tensor add_parameter_to_container(torch::nn::Module& owner,
                                      const std::string& container,
                                      const std::string& name,
                                      const at::Tensor& value);

/// Removes module or parameter `name` from `owner`'s child `container`, and
/// the container itself once it is empty. Nothing happens if absent.
void remove_from_container(torch::nn::Module& owner,
                           const std::string& container,
                           const std::string& name);

}  // namespace peftcpp::peft
