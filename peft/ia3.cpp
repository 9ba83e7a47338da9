#include "peft/ia3.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <map>
#include <stdexcept>

#include "common/error.h"
#include "models/layers/linear.h"
#include "peft/hook_containers.h"
#include "peft/linear_hook_adapter.h"
#include "peft/target_selection.h"

namespace peftcpp::peft {
namespace {

constexpr const char* kContainer = "ia3_l";

class Ia3Hook final : public models::LinearHook {
 public:
  Ia3Hook(models::LinearImpl& layer, std::string name, bool feedforward,
          bool init_ones)
      : layer_(layer), name_(std::move(name)), feedforward_(feedforward) {
    auto options = layer.weight.options();
    if (options.dtype() == at::kHalf || options.dtype() == at::kBFloat16)
      options = options.dtype(at::kFloat);  // as PEFT: 16-bit bases, fp32 l
    // [1, in] scales the input, [out, 1] the output (PEFT's shapes).
    const std::vector<int64_t> shape =
        feedforward ? std::vector<int64_t>{1, layer.in_features()}
                    : std::vector<int64_t>{layer.out_features(), 1};
    at::Tensor value =
        init_ones ? at::ones(shape, options) : at::randn(shape, options);
    scale_ = add_parameter_to_container(layer, kContainer, name_,
                                        value.set_requires_grad(true));
  }

  at::Tensor transform_input(const models::LinearImpl& /*layer*/,
                             const at::Tensor& x) override {
    if (!feedforward_ || !enabled_ || merged_)
      return x;
    return (x.to(scale_.scalar_type()) * scale_.flatten()).to(x.scalar_type());
  }

  at::Tensor transform_output(const models::LinearImpl& /*layer*/,
                              const at::Tensor& /*x*/,
                              const at::Tensor& y) override {
    if (feedforward_ || !enabled_ || merged_)
      return y;
    return (y.to(scale_.scalar_type()) * scale_.flatten()).to(y.scalar_type());
  }

  void set_enabled(bool enabled) { enabled_ = enabled; }
  bool merged() const { return merged_; }

  // W * l (rows for output scaling, columns for input scaling); the bias
  // scales with the output. The base values are kept so unmerge restores
  // them exactly (dividing by l would not, and fails for l = 0).
  std::pair<at::Tensor, at::Tensor> merged_tensors() const {
    at::NoGradGuard no_grad;
    const at::Tensor weight =
        (layer_.weight * scale_).to(layer_.weight.scalar_type());
    at::Tensor bias;
    if (!feedforward_ && layer_.bias.defined())
      bias = (layer_.bias * scale_.reshape(layer_.bias.sizes()))
                 .to(layer_.bias.scalar_type());
    return {weight, bias};
  }

  void check_merge() const {
    const auto [weight, bias] = merged_tensors();
    require_finite_merge(weight, bias, name_);
  }

  void merge() {
    if (merged_)
      return;
    at::NoGradGuard no_grad;
    const auto [weight, bias] = merged_tensors();
    original_weight_ = layer_.weight.clone();
    layer_.weight.copy_(weight);
    if (bias.defined()) {
      original_bias_ = layer_.bias.clone();
      layer_.bias.copy_(bias);
    }
    merged_ = true;
  }

  void unmerge() {
    if (!merged_)
      return;
    at::NoGradGuard no_grad;
    layer_.weight.copy_(original_weight_);
    if (original_bias_.defined())
      layer_.bias.copy_(original_bias_);
    original_weight_ = at::Tensor();
    original_bias_ = at::Tensor();
    merged_ = false;
  }

  void remove() { remove_from_container(layer_, kContainer, name_); }
  NamedTensors named_parameters() const {
    return {{std::string(kContainer) + "." + name_, scale_}};
  }

 private:
  models::LinearImpl& layer_;
  std::string name_;
  bool feedforward_;
  at::Tensor scale_;
  at::Tensor original_weight_, original_bias_;  // while merged
  bool enabled_ = false;
  bool merged_ = false;
};

const std::map<std::string,
               std::pair<std::vector<std::string>, std::vector<std::string>>>&
defaults() {
  // model_type -> (targets, feed-forward modules), PEFT's
  // TRANSFORMERS_MODELS_TO_IA3_{TARGET,FEEDFORWARD}_MODULES_MAPPING.
  static const std::map<std::string, std::pair<std::vector<std::string>,
                                               std::vector<std::string>>>
      kDefaults = {
          {"bert", {{"key", "value", "output.dense"}, {"output.dense"}}},
          {"roberta", {{"key", "value", "output.dense"}, {"output.dense"}}},
          {"gpt2", {{"c_attn", "mlp.c_proj"}, {"mlp.c_proj"}}},
          {"llama", {{"k_proj", "v_proj", "down_proj"}, {"down_proj"}}},
          {"mistral", {{"k_proj", "v_proj", "down_proj"}, {"down_proj"}}},
          {"qwen2", {{"q_proj", "v_proj", "down_proj"}, {"down_proj"}}},
      };
  return kDefaults;
}

const std::pair<std::vector<std::string>, std::vector<std::string>>&
defaults_for(const std::string& model_type) {
  const auto it = defaults().find(model_type);
  if (it == defaults().end()) {
    std::vector<std::string> known;
    for (const auto& [type, d] : defaults())
      known.push_back(type);
    throw std::invalid_argument(error_message(
        "add_ia3",
        "a model type with default targets (" + join_names(known) + ")",
        "\"" + model_type + "\"",
        "set target_modules and feedforward_modules explicitly"));
  }
  return it->second;
}

}  // namespace

std::vector<std::string> default_ia3_targets(const std::string& model_type) {
  return defaults_for(model_type).first;
}
std::vector<std::string> default_ia3_feedforward(
    const std::string& model_type) {
  return defaults_for(model_type).second;
}

std::unique_ptr<Adapter> add_ia3(const AdapterContext& ctx,
                                 const std::string& name, Ia3Config& config) {
  const std::string where = "add_ia3(" + name + ")";
  // As PEFT, each of the two is filled with its default when unset.
  if (config.target_modules.empty())
    config.target_modules =
        ModuleSelector::list(default_ia3_targets(ctx.info.model_type));
  if (!config.feedforward_modules)
    config.feedforward_modules =
        ModuleSelector::list(default_ia3_feedforward(ctx.info.model_type));
  const ModuleSelector& feedforward_modules = *config.feedforward_modules;
  if (!config.target_modules.regex && !feedforward_modules.regex) {
    for (const auto& ff : feedforward_modules.names) {
      bool listed = false;
      for (const auto& t : config.target_modules.names)
        listed = listed || t == ff;
      if (!listed) {
        throw std::invalid_argument(error_message(
            where, "feedforward_modules to be a subset of target_modules",
            "\"" + ff + "\" not in [" +
                join_names(config.target_modules.names) + "]"));
      }
    }
  }
  const TargetSpec spec{config.target_modules, config.exclude_modules,
                        config.layers_to_transform, config.layers_pattern,
                        ctx.modules_to_save};
  const auto layers = select_target_linears(*ctx.root, spec, where);
  // As PEFT: the last targeted layer's kind (Conv1D or not) is what the
  // config records; our [out, in] weights need no transposing.
  config.fan_in_fan_out = is_conv1d(ctx.info, layers.back().first);
  auto adapter = std::make_unique<LinearHookAdapter<Ia3Hook>>(name, "ia3");
  for (const auto& [module_name, layer] : layers) {
    // PEFT: a string is a full regex match, a list entry a name suffix
    // (plain endswith, no dot required).
    bool feedforward = false;
    if (feedforward_modules.regex) {
      feedforward = selector_matches(feedforward_modules, module_name);
    } else {
      for (const auto& ff : feedforward_modules.names) {
        feedforward =
            feedforward || (module_name.size() >= ff.size() &&
                            module_name.compare(module_name.size() - ff.size(),
                                                ff.size(), ff) == 0);
      }
    }
    auto hook = std::make_shared<Ia3Hook>(*layer, name, feedforward,
                                          config.init_ia3_weights);
    adapter->attach(module_name, layer, hook);
  }
  return adapter;
}

}  // namespace peftcpp::peft
