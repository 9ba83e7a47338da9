// Bottleneck adapters in decoder-only models, where AdapterHub (adapters
// 1.3.0, models/gpt2 and models/llama) puts them: its GPT2BlockWithAdapters
// and LlamaDecoderLayerWithAdapters replace the two residual additions of a
// pre-norm block,
//
//   h = x + attn(norm_1(x))  ->  h = attention_adapters(attn(norm_1(x)), x)
//   y = h + mlp(norm_2(h))   ->  y = output_adapters(mlp(norm_2(h)), h)
//
// calling BottleneckLayer with layer_norm None: original_ln_before adds the
// residual without normalising (seq_bn's adapter reads attn + x),
// original_ln_after adds it again, and an empty slot is the plain sum.
// Saved keys: "transformer.h.0.output_adapters.adapters.<name>.adapter_up
// .weight" (GPT-2), "model.layers.0.attention_adapters.adapters.<name>..."
// (LLaMA family).

#include <regex>
#include <stdexcept>

#include "common/error.h"
#include "models/decoder/decoder_layers.h"
#include "peft/bottleneck_layer.h"

namespace peftcpp::peft::detail {
namespace {

// A block's slot: AdapterHub's BottleneckLayer, whose adapters sit in its
// "adapters" ModuleDict.
class DecoderBottleneckSlot final : public models::DecoderAdapterSlot {
 public:
  DecoderBottleneckSlot()
      : holder_(register_module(
            "adapters", std::make_shared<torch::nn::Module>("ModuleDict"))),
        stack(*holder_) {}

  at::Tensor forward(const at::Tensor& hidden,
                     const at::Tensor& residual) override {
    return stack.forward(hidden, residual, /*norm=*/nullptr);
  }

 private:
  std::shared_ptr<torch::nn::Module> holder_;

 public:
  BottleneckStack stack;
};

}  // namespace

std::vector<SlotSite> decoder_sites(torch::nn::Module& root) {
  // GPT-2's "h.<i>", the LLaMA family's "layers.<i>".
  static const std::regex kPattern(R"((?:.*\.)?(?:h|layers)\.(\d+))");
  std::vector<SlotSite> out;
  for (const auto& item : root.named_modules(/*name_prefix=*/"",
                                             /*include_self=*/false)) {
    auto block =
        std::dynamic_pointer_cast<models::DecoderBlockBase>(item.value());
    std::smatch m;
    if (!block || !std::regex_match(item.key(), m, kPattern))
      continue;
    // AdapterHub's order: attention_adapters, then output_adapters.
    for (const auto place :
         {models::AdapterPlace::kAttention, models::AdapterPlace::kOutput}) {
      const bool attention = place == models::AdapterPlace::kAttention;
      SlotSite s;
      s.path =
          item.key() + (attention ? ".attention_adapters" : ".output_adapters");
      s.layer = std::stoll(m[1].str());
      s.attention = attention;
      s.hidden = block->hidden_size();
      s.reference = block->parameters().front();
      s.training = block->is_training();
      s.existing = [block, place, path = s.path](
                       const std::string& where) -> BottleneckStack* {
        auto held = block->adapter_slot(place);
        auto slot = std::dynamic_pointer_cast<DecoderBottleneckSlot>(held);
        if (held && !slot) {
          throw std::invalid_argument(
              error_message(where, "a free adapter slot at " + path,
                            "a slot holding another kind of adapter"));
        }
        return slot ? &slot->stack : nullptr;
      };
      s.create = [block, place] {
        auto slot = std::make_shared<DecoderBottleneckSlot>();
        slot->train(block->is_training());
        block->set_adapter_slot(place, slot);
        return &slot->stack;
      };
      s.release = [block, place] {
        if (std::dynamic_pointer_cast<DecoderBottleneckSlot>(
                block->adapter_slot(place)))
          block->set_adapter_slot(place, nullptr);
      };
      out.push_back(std::move(s));
    }
  }
  return out;
}

}  // namespace peftcpp::peft::detail
