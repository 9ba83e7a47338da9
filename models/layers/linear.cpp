#include "models/layers/linear.h"

#include <torch/nn/init.h>

#include <algorithm>
#include <cmath>
#include <ostream>
#include <stdexcept>

#include "common/error.h"

namespace peftcpp::models {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool bias) {
  if (in_features <= 0 || out_features <= 0) {
    throw std::invalid_argument(error_message(
        "Linear", "positive in_features and out_features",
        std::to_string(in_features) + " and " + std::to_string(out_features)));
  }
  weight =
      register_parameter("weight", torch::empty({out_features, in_features}));
  if (bias) {
    this->bias = register_parameter("bias", torch::empty({out_features}));
  }
  reset_parameters();
}

void LinearImpl::tie_weight(const at::Tensor& shared) {
  if (shared.dim() != 2 || shared.sizes() != weight.sizes()) {
    throw std::invalid_argument(
        "[Linear::tie_weight] expected a weight of the layer's shape [" +
        std::to_string(weight.size(0)) + ", " + std::to_string(weight.size(1)) +
        "], got one of " + std::to_string(shared.dim()) + " dimensions " +
        "or another shape");
  }
  parameters_["weight"] = shared;
  weight = shared;
}

void LinearImpl::reset_parameters() {
  // nn.Linear's init: kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(in), 1/sqrt(in))
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(weight.size(1)));
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

at::Tensor LinearImpl::forward_base(const at::Tensor& x) const {
  return at::linear(x, weight, bias);
}

at::Tensor LinearImpl::forward(const at::Tensor& x) {
  if (hooks_.empty())
    return at::linear(x, weight, bias);
  at::Tensor h = x;
  for (auto& [name, hook] : hooks_)
    h = hook->transform_input(*this, h);
  at::Tensor y = at::linear(h, weight, bias);
  for (auto& [name, hook] : hooks_)
    y = hook->transform_output(*this, x, y);
  return y;
}

void LinearImpl::attach_hook(const std::string& name,
                             std::shared_ptr<LinearHook> hook) {
  const auto same = [&](const auto& p) { return p.first == name; };
  if (std::any_of(hooks_.begin(), hooks_.end(), same)) {
    throw std::invalid_argument(
        error_message("Linear::attach_hook", "a new hook name",
                      "\"" + name + "\"", "detach the existing hook first"));
  }
  hooks_.emplace_back(name, std::move(hook));
}

std::shared_ptr<LinearHook> LinearImpl::detach_hook(const std::string& name) {
  const auto it = std::find_if(hooks_.begin(), hooks_.end(),
                               [&](const auto& p) { return p.first == name; });
  if (it == hooks_.end()) {
    std::vector<std::string> names;
    for (const auto& p : hooks_)
      names.push_back(p.first);
    throw std::out_of_range(error_message("Linear::detach_hook",
                                          "one of [" + join_names(names) + "]",
                                          "\"" + name + "\""));
  }
  auto hook = it->second;
  hooks_.erase(it);
  return hook;
}

void LinearImpl::pretty_print(std::ostream& stream) const {
  stream << "peftcpp::Linear(in_features=" << weight.size(1)
         << ", out_features=" << weight.size(0)
         << ", bias=" << (bias.defined() ? "true" : "false");
  if (!hooks_.empty())
    stream << ", hooks=" << hooks_.size();
  stream << ")";
}

}  // namespace peftcpp::models
