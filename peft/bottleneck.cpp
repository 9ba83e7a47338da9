#include "peft/bottleneck.h"

#include <torch/nn/modules/normalization.h>

#include <regex>
#include <stdexcept>

#include "common/error.h"
#include "models/encoder/encoder_model.h"
#include "peft/bottleneck_layer.h"

namespace peftcpp::peft {
namespace {

using detail::BottleneckStack;
using detail::SlotSite;

// An encoder sub-layer's slot: the stack registered on the slot itself
// (set as "adapters", so "...output.adapters.<name>.adapter_up"), run with
// the sub-layer's post-norm LayerNorm.
class BottleneckSlot final : public models::SublayerAdapter {
 public:
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& residual,
                     torch::nn::LayerNorm& layer_norm) override {
    return stack.forward(hidden, residual, [&](const at::Tensor& t) {
      return layer_norm->forward(t);
    });
  }

  BottleneckStack stack{*this};
};

// The adapter slots of every encoder layer under `root`, in module order.
std::vector<SlotSite> encoder_sites(torch::nn::Module& root) {
  static const std::regex kPattern(
      R"((?:.*\.)?encoder\.layer\.(\d+)\.(attention\.output|output))");
  std::vector<SlotSite> out;
  for (const auto& item : root.named_modules(/*name_prefix=*/"",
                                             /*include_self=*/false)) {
    auto sublayer =
        std::dynamic_pointer_cast<models::SublayerOutputImpl>(item.value());
    std::smatch m;
    if (!sublayer || !std::regex_match(item.key(), m, kPattern))
      continue;
    SlotSite s;
    s.path = item.key();
    s.layer = std::stoll(m[1].str());
    s.attention = m[2].str() == "attention.output";
    // AdapterHub sizes by model_config.hidden_size: the LayerNorm's width.
    s.reference = sublayer->LayerNorm->weight;
    s.hidden = s.reference.size(0);
    s.training = sublayer->is_training();
    s.existing = [sublayer,
                  path = s.path](const std::string& where) -> BottleneckStack* {
      auto slot =
          std::dynamic_pointer_cast<BottleneckSlot>(sublayer->adapter());
      if (sublayer->adapter() && !slot) {
        throw std::invalid_argument(
            error_message(where, "a free adapter slot at " + path,
                          "a slot holding another kind of adapter"));
      }
      return slot ? &slot->stack : nullptr;
    };
    s.create = [sublayer] {
      auto slot = std::make_shared<BottleneckSlot>();
      slot->train(sublayer->is_training());
      sublayer->set_adapter(slot);
      return &slot->stack;
    };
    s.release = [sublayer] {
      if (std::dynamic_pointer_cast<BottleneckSlot>(sublayer->adapter()))
        sublayer->set_adapter(nullptr);
    };
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

std::unique_ptr<Adapter> add_bottleneck(const AdapterContext& ctx,
                                        const std::string& name,
                                        BottleneckConfig& config) {
  const std::string where = "add_bottleneck(" + name + ")";
  if (ctx.root == nullptr) {
    throw std::invalid_argument(
        error_message(where, "a model (AdapterContext::root)", "nullptr"));
  }
  validate_bottleneck_config(config, where);
  std::vector<SlotSite> sites = encoder_sites(*ctx.root);
  if (sites.empty())
    sites = detail::decoder_sites(*ctx.root);
  if (sites.empty()) {
    throw std::invalid_argument(error_message(
        where,
        "a model with adapter slots (a BERT-family encoder: "
        "encoder.layer.<i>.attention.output / .output; a GPT-2 or LLaMA-family "
        "decoder: its blocks)",
        "a model without them"));
  }
  return detail::build_bottleneck(sites, name, config, where);
}

}  // namespace peftcpp::peft
