#include "peft/adapter.h"

#include <ATen/core/grad_mode.h>

#include <stdexcept>

#include "common/error.h"

namespace peftcpp::peft {

void Adapter::merge(bool /*safe*/) {
  throw std::invalid_argument(error_message(
      "merge_adapter", "a mergeable method (LoRA, DoRA, (IA)^3)",
      "adapter \"" + name_ + "\" of a method without merge",
      "prompt, prefix and bottleneck adapters run unmerged"));
}

void Adapter::unmerge() {
  throw std::invalid_argument(error_message(
      "unmerge_adapter", "a merged adapter",
      "adapter \"" + name_ + "\" of a method without merge"));
}

std::string Adapter::saved_key(const std::string& in_memory_name,
                               const std::string& prefix) const {
  // PEFT removes ".<adapter name>" from every key: the segment in the
  // middle (lora_A.default.weight) or at the end (ia3_l.default).
  const std::string middle = "." + name_ + ".";
  const std::string tail = "." + name_;
  std::string key = in_memory_name;
  if (const auto pos = key.rfind(middle); pos != std::string::npos) {
    key.erase(pos, tail.size());
  } else if (key.size() > tail.size() &&
             key.compare(key.size() - tail.size(), tail.size(), tail) == 0) {
    key.erase(key.size() - tail.size());
  }
  return prefix + key;
}

TensorMap Adapter::state_dict_to_save(const std::string& prefix) const {
  TensorMap out;
  for (const auto& [name, tensor] : named_parameters())
    out[saved_key(name, prefix)] = tensor.detach();
  return out;
}

namespace {
std::string shape_of(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i)
    s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}
}  // namespace

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
      throw std::runtime_error(error_message(
          "load_adapter", "tensor \"" + key + "\" in " + where, "none",
          "the adapter was saved for another model class or with other "
          "target modules"));
    }
    if (it->second.sizes() != param.sizes()) {
      throw std::runtime_error(error_message(
          "load_adapter",
          "tensor \"" + key + "\" of shape " + shape_of(param),
          shape_of(it->second) + " in " + where,
          "maybe wrong base model? The adapter does not fit this model's "
          "dimensions"));
    }
    copies.emplace_back(param, it->second);
    used.push_back(key);
  }
  at::NoGradGuard no_grad;
  for (auto& [param, value] : copies)
    param.copy_(value);
  return used;
}

}  // namespace peftcpp::peft
