#pragma once
// Internal to peft/bottleneck*.cpp: the parts of AdapterHub's bottleneck
// adapters that do not depend on the model family. One adapter in one slot
// (AdapterHub's Adapter / ParallelAdapter), the adapters of one slot run as
// a Stack (its BottleneckLayer), and the model-level Adapter over all the
// slots it sits in. The families differ only in where the slots are and in
// the sub-layer normalisation AdapterHub passes (the encoders' post-norm
// LayerNorm; none on the pre-norm decoders).

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/layers/activation.h"
#include "peft/adapter.h"
#include "peft/adapter_config.h"

namespace peftcpp::peft::detail {

/// The sub-layer normalisation AdapterHub applies to a sum (the original
/// LayerNorm); empty where it passes none: the sum is used as it is.
using SumNorm = std::function<at::Tensor(const at::Tensor&)>;

/// AdapterHub's Adapter (or ParallelAdapter, config.is_parallel).
class BottleneckLayerImpl : public torch::nn::Module {
 public:
  BottleneckLayerImpl(const BottleneckConfig& c, int64_t hidden,
                      int64_t bottleneck, models::Activation act);

  /// pre_forward: the adapter's input z and residual r from the sub-layer
  /// output h (or the previous stacked adapter's output) and the residual
  /// input x.
  std::pair<at::Tensor, at::Tensor> pre_forward(const at::Tensor& h,
                                                const at::Tensor& x,
                                                const SumNorm& norm) const;
  /// forward: [B, T, H] -> [B, T, H].
  at::Tensor forward(const at::Tensor& z, const at::Tensor& r);
  /// post_forward, with h the slot's original input.
  at::Tensor post_forward(at::Tensor o, const at::Tensor& h,
                          const at::Tensor& x, const SumNorm& norm) const;
  /// Extra saved names of a parameter: the input LayerNorm is also
  /// "adapter_down.0.*" in AdapterHub's state dict.
  std::vector<std::string> saved_aliases(const std::string& param) const;

  bool enabled = false;

 private:
  void initialise();

  BottleneckConfig c_;
  models::Activation act_;
  at::Tensor scale_;
  torch::nn::LayerNorm norm_before_{nullptr};
  torch::nn::Linear down_{nullptr};
  torch::nn::Linear up_{nullptr};
  torch::nn::LayerNorm norm_after_{nullptr};
  torch::nn::Linear gate_{nullptr};
};

/// The adapters of one slot, registered in `holder` by adapter name (so
/// "<slot path>.adapters.<name>.adapter_up.weight"), in the order added.
class BottleneckStack {
 public:
  explicit BottleneckStack(torch::nn::Module& holder) : holder_(&holder) {}

  void add(const std::string& name,
           std::shared_ptr<BottleneckLayerImpl> adapter);
  void remove(const std::string& name);
  bool has(const std::string& name) const;
  bool empty() const { return order_.empty(); }

  /// The enabled adapters as AdapterHub's Stack: each one's pre_forward on
  /// the previous output, the last one's post_forward. None enabled: the
  /// base sub-layer, norm(hidden + residual).
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& residual,
                     const SumNorm& norm) const;

 private:
  torch::nn::Module* holder_;
  std::vector<std::pair<std::string, std::shared_ptr<BottleneckLayerImpl>>>
      order_;
};

/// One place a model offers for an adapter, as the family finds it.
struct SlotSite {
  /// Where saved keys start: "bert.encoder.layer.0.output",
  /// "transformer.h.0.attention_adapters" (then ".adapters.<name>.").
  std::string path;
  int64_t layer = 0;
  bool attention = false;  ///< mh_adapter's place, else output_adapter's
  int64_t hidden = 0;      ///< AdapterHub's model_config.hidden_size
  at::Tensor reference;    ///< a weight of the layer: device and dtype
  bool training = false;
  /// The stack already at the site, or null; throws std::invalid_argument
  /// naming its argument when the site holds another kind of adapter.
  std::function<BottleneckStack*(const std::string& where)> existing;
  /// Puts a new, empty stack at the site and returns it.
  std::function<BottleneckStack*()> create;
  /// Empties the site (called when its stack has become empty).
  std::function<void()> release;
};

/// add_bottleneck on the sites a family found (in module order); `model`
/// describes them for the message when none fits. Checks everything before
/// it changes anything.
std::unique_ptr<Adapter> build_bottleneck(const std::vector<SlotSite>& sites,
                                          const std::string& name,
                                          const BottleneckConfig& config,
                                          const std::string& where);

/// The sites of the GPT-2 / LLaMA-family blocks under `root` (their
/// attention_adapters and output_adapters), empty when it has none.
std::vector<SlotSite> decoder_sites(torch::nn::Module& root);

}  // namespace peftcpp::peft::detail
