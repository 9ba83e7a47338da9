#pragma once
// Tensor comparisons shared by the tests.

#include <ATen/ATen.h>
#include <catch2/catch.hpp>

namespace peftcpp::testing {

/// max |a - b| in double precision; the shapes must be equal.
inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace peftcpp::testing
