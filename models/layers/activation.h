#pragma once
// The activation functions named by Hugging Face configs (`hidden_act`),
// with the same formulas as transformers' ACT2FN, so outputs match to fp32
// rounding.

#include <ATen/core/Tensor.h>

#include <string>
#include <string_view>

namespace peftcpp::models {

/// One entry of transformers' ACT2FN table.
enum class Activation {
  kGelu,             ///< "gelu": exact, erf-based
  kGeluPython,       ///< "gelu_python": erf-based, written out
  kGeluNew,          ///< "gelu_new" / "gelu_accurate": tanh approximation
  kGeluPytorchTanh,  ///< "gelu_pytorch_tanh": torch's tanh approximation
  kGeluFast,         ///< "gelu_fast"
  kGelu10,           ///< "gelu_10": exact gelu clipped to [-10, 10]
  kQuickGelu,        ///< "quick_gelu": x * sigmoid(1.702 x)
  kRelu,
  kRelu2,  ///< "relu2": relu(x)^2
  kRelu6,
  kLeakyRelu,
  kSilu,  ///< "silu" / "swish"
  kMish,
  kTanh,
  kSigmoid,
  kLinear,  ///< "linear": identity
};

/// Parses a config's `hidden_act`; throws std::invalid_argument listing the
/// supported names for anything else.
Activation parse_activation(std::string_view name);

/// The config name of an activation (the first of its aliases).
std::string activation_name(Activation act);

/// Applies `act` elementwise.
at::Tensor apply_activation(const at::Tensor& x, Activation act);

}  // namespace peftcpp::models
