#pragma once
// Shapes as error messages print them: "[2, 5, 32]".

#include <ATen/core/Tensor.h>

#include <string>

namespace peftcpp::models {

inline std::string shape_string(c10::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i > 0 ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

inline std::string shape_string(const at::Tensor& t) {
  return shape_string(t.sizes());
}

}  // namespace peftcpp::models
