#pragma once
// The one linear layer every targetable projection of every model goes
// through (the hook point of STYLE.md, after llama.cpp's build_lora_mm).
//
// It owns `weight` [out, in] and `bias` [out] under nn.Linear's names, so base
// checkpoints load unchanged, and keeps an ordered list of hooks that PEFT
// methods attach (LoRA, DoRA, (IA)^3, ...). With no hook attached, forward is
// exactly at::linear: model code never knows adapters exist, and an unused
// hook point costs one branch.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace peftcpp::models {

class LinearImpl;

/// Something that changes what a Linear computes. Input transforms run in
/// attach order before the base matmul; output transforms run in attach
/// order after it, each seeing the original input as well.
///   y = post_n(... post_1(x, W pre_n(... pre_1(x)) + b))
///
/// A hook is not itself a module: it registers the modules that hold its
/// parameters on the layer (LinearImpl::register_module), under the names
/// Hugging Face PEFT uses, so a LoRA adapter "default" on
/// ...attention.self.query has the parameter
/// ...attention.self.query.lora_A.default.weight, as in PEFT. Hooks read the
/// layer's training flag (dropout) from the layer they are given.
class LinearHook {
 public:
  virtual ~LinearHook() = default;

  /// Transforms the input before the base matmul ((IA)^3 on feed-forward
  /// layers scales the input). Default: unchanged.
  virtual at::Tensor transform_input(const LinearImpl& layer,
                                     const at::Tensor& x) {
    return x;
  }

  /// Transforms the output of the base matmul, given the layer (for its
  /// weight, e.g. DoRA) and the layer's original input `x` (e.g. LoRA adds
  /// s * B A x). Default: unchanged. `y` is always a tensor the layer
  /// created in this call (the matmul's output or an earlier hook's), never
  /// the caller's, so a hook may update it in place when autograd does not
  /// track it.
  virtual at::Tensor transform_output(const LinearImpl& layer,
                                      const at::Tensor& x,
                                      const at::Tensor& y) {
    return y;
  }
};

/// y = x W^T + b, plus whatever the attached hooks add.
class LinearImpl : public torch::nn::Module {
 public:
  /// A layer of `in_features` -> `out_features`, initialised as nn.Linear
  /// (kaiming-uniform a=sqrt(5) for the weight, uniform(+-1/sqrt(in)) bias).
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true);

  /// Applies the base projection and the hooks.
  at::Tensor forward(const at::Tensor& x);

  /// The projection alone, without any hook.
  at::Tensor forward_base(const at::Tensor& x) const;

  /// Attaches `hook` under `name` (its key in hooks(); the hook registers
  /// its own parameter modules). Throws std::invalid_argument if a hook of
  /// that name is attached already.
  void attach_hook(const std::string& name, std::shared_ptr<LinearHook> hook);

  /// Detaches the hook `name` (the modules it registered stay until it
  /// unregisters them); throws std::out_of_range if there is none.
  std::shared_ptr<LinearHook> detach_hook(const std::string& name);

  /// The attached hooks in the order they run.
  const std::vector<std::pair<std::string, std::shared_ptr<LinearHook>>>&
  hooks() const {
    return hooks_;
  }

  int64_t in_features() const { return weight.size(1); }
  int64_t out_features() const { return weight.size(0); }

  void reset_parameters();
  /// Makes `weight` this very tensor (same storage, same autograd leaf):
  /// tied embeddings, an lm_head that is the input embedding table.
  void tie_weight(const at::Tensor& shared);
  void pretty_print(std::ostream& stream) const override;

  at::Tensor weight;  ///< [out_features, in_features]
  at::Tensor bias;    ///< [out_features], undefined when built without bias

 private:
  std::vector<std::pair<std::string, std::shared_ptr<LinearHook>>> hooks_;
};
TORCH_MODULE(Linear);

}  // namespace peftcpp::models
