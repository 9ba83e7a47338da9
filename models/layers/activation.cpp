#include "models/layers/activation.h"

#include <ATen/ATen.h>

#include <array>
#include <cmath>
#include <stdexcept>
#include <utility>

#include "common/error.h"

namespace peftcpp::models {

namespace {
// Name table; several names may map to one activation, the first is canonical.
constexpr std::array<std::pair<std::string_view, Activation>, 18> kNames{{
    {"gelu", Activation::kGelu},
    {"gelu_python", Activation::kGeluPython},
    {"gelu_new", Activation::kGeluNew},
    {"gelu_accurate", Activation::kGeluNew},
    {"gelu_pytorch_tanh", Activation::kGeluPytorchTanh},
    {"gelu_fast", Activation::kGeluFast},
    {"gelu_10", Activation::kGelu10},
    {"quick_gelu", Activation::kQuickGelu},
    {"relu", Activation::kRelu},
    {"relu2", Activation::kRelu2},
    {"relu6", Activation::kRelu6},
    {"leaky_relu", Activation::kLeakyRelu},
    {"silu", Activation::kSilu},
    {"swish", Activation::kSilu},
    {"mish", Activation::kMish},
    {"tanh", Activation::kTanh},
    {"sigmoid", Activation::kSigmoid},
    {"linear", Activation::kLinear},
}};
}  // namespace

Activation parse_activation(std::string_view name) {
  for (const auto& [n, act] : kNames) {
    if (n == name)
      return act;
  }
  std::string supported;
  for (const auto& [n, act] : kNames) {
    if (!supported.empty())
      supported += ", ";
    supported += n;
  }
  throw std::invalid_argument(
      error_message("parse_activation", "one of " + supported,
                    "hidden_act \"" + std::string(name) + "\""));
}

std::string activation_name(Activation act) {
  for (const auto& [n, a] : kNames) {
    if (a == act)
      return std::string(n);
  }
  return "unknown";
}

at::Tensor apply_activation(const at::Tensor& x, Activation act) {
  // sqrt(2 / pi), as transformers writes it for the tanh approximations.
  const double kSqrt2OverPi = std::sqrt(2.0 / M_PI);
  switch (act) {
    case Activation::kGelu:
      return at::gelu(x);
    case Activation::kGeluPython:
      return x * 0.5 * (1.0 + at::erf(x / std::sqrt(2.0)));
    case Activation::kGeluNew:
      return 0.5 * x *
             (1.0 + at::tanh(kSqrt2OverPi * (x + 0.044715 * at::pow(x, 3.0))));
    case Activation::kGeluPytorchTanh:
      return at::gelu(x, "tanh");
    case Activation::kGeluFast:
      return 0.5 * x *
             (1.0 + at::tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)));
    case Activation::kGelu10:
      return at::clamp(at::gelu(x), -10.0, 10.0);
    case Activation::kQuickGelu:
      return x * at::sigmoid(1.702 * x);
    case Activation::kRelu:
      return at::relu(x);
    case Activation::kRelu2:
      return at::square(at::relu(x));
    case Activation::kRelu6:
      return at::hardtanh(x, 0.0, 6.0);
    case Activation::kLeakyRelu:
      return at::leaky_relu(x, 0.01);
    case Activation::kSilu:
      return at::silu(x);
    case Activation::kMish:
      return at::mish(x);
    case Activation::kTanh:
      return at::tanh(x);
    case Activation::kSigmoid:
      return at::sigmoid(x);
    case Activation::kLinear:
      return x;
  }
  throw std::logic_error("[apply_activation] unhandled activation");
}

}  // namespace peftcpp::models
