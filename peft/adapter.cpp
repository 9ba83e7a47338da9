#include "peft/adapter.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <stdexcept>

#include "common/error.h"
#include "peft/linear_hook_adapter.h"

namespace peftcpp::peft {

bool is_conv1d(const ModelInfo& info, const std::string& module) {
  return std::find(info.conv1d_modules.begin(), info.conv1d_modules.end(),
                   module) != info.conv1d_modules.end();
}

void Adapter::merge(bool /*safe*/) {
  throw std::invalid_argument(
      error_message("merge_adapter", "a mergeable method (LoRA, DoRA, (IA)^3)",
                    "adapter \"" + name_ + "\" of a method without merge",
                    "prompt, prefix and bottleneck adapters run unmerged"));
}

void Adapter::unmerge() {
  throw std::invalid_argument(
      error_message("unmerge_adapter", "a merged adapter",
                    "adapter \"" + name_ + "\" of a method without merge"));
}

std::string Adapter::saved_key(const std::string& in_memory_name,
                               const std::string& prefix) const {
  // PEFT's _remove_adapter_name_from_state_dict_key: ".<name>" at the end
  // ("x.ia3_l.<name>") or just before the last segment
  // ("x.lora_A.<name>.weight"); a module path segment that happens to equal
  // the name is left alone.
  const std::string tail = "." + name_;
  const auto ends_with_tail = [&](const std::string& s) {
    return s.size() > tail.size() &&
           s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  std::string key = in_memory_name;
  if (ends_with_tail(key)) {
    key.erase(key.size() - tail.size());
  } else if (const auto dot = key.rfind('.'); dot != std::string::npos) {
    std::string head = key.substr(0, dot);
    if (ends_with_tail(head)) {
      head.erase(head.size() - tail.size());
      key = head + key.substr(dot);
    }
  }
  return prefix + key;
}

TensorMap Adapter::state_dict_to_save(const std::string& prefix) const {
  TensorMap out;
  for (const auto& [name, tensor] : named_parameters())
    out[saved_key(name, prefix)] = tensor.detach();
  return out;
}

std::vector<std::string> Adapter::load_saved(const TensorMap& saved,
                                             const std::string& prefix,
                                             const std::string& where) {
  // Check everything before copying anything: a refused adapter leaves the
  // model as it was.
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;
  std::vector<std::string> used;
  for (const auto& [name, param] : named_parameters()) {
    const std::string key = saved_key(name, prefix);
    const auto it = saved.find(key);
    if (it == saved.end()) {
      throw std::runtime_error(
          error_message("load_adapter", "tensor \"" + key + "\" in " + where,
                        "none", missing_tensor_hint()));
    }
    if (it->second.sizes() != param.sizes()) {
      throw std::runtime_error(error_message(
          "load_adapter",
          "tensor \"" + key + "\" of shape " + c10::str(param.sizes()),
          c10::str(it->second.sizes()) + " in " + where, wrong_shape_hint()));
    }
    copies.emplace_back(param, it->second);
    used.push_back(key);
  }
  at::NoGradGuard no_grad;
  for (auto& [param, value] : copies)
    param.copy_(value);
  return used;
}

void require_finite_merge(const at::Tensor& weight, const at::Tensor& bias,
                          const std::string& adapter) {
  const auto finite = [](const at::Tensor& t) {
    return !t.defined() || at::isfinite(t).all().item<bool>();
  };
  if (!finite(weight) || !finite(bias)) {
    throw std::runtime_error(error_message(
        "merge_adapter", "finite merged weights",
        "NaN or Inf for adapter \"" + adapter + "\"",
        "the adapter seems to be broken; the base weights are unchanged"));
  }
}

}  // namespace peftcpp::peft
