#include "peft/lora.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/linear.h>

#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>

#include "common/error.h"
#include "models/layers/linear.h"
#include "peft/hook_containers.h"
#include "peft/linear_hook_adapter.h"
#include "peft/target_selection.h"

namespace peftcpp::peft {
namespace {

// One LoRA adapter on one Linear layer.
class LoraHook final : public models::LinearHook {
 public:
  LoraHook(models::LinearImpl& layer, std::string name, int64_t r, double alpha,
           const LoraConfig& config)
      : layer_(layer),
        name_(std::move(name)),
        scaling_(config.use_rslora ? alpha / std::sqrt(static_cast<double>(r))
                                   : alpha / static_cast<double>(r)),
        dropout_(config.lora_dropout),
        use_dora_(config.use_dora),
        lora_bias_(config.lora_bias) {
    // As PEFT (autocast_adapter_dtype): adapters of a 16-bit base are kept
    // in float32; their output is cast back to the layer's dtype.
    auto options = layer.weight.options();
    if (options.dtype() == at::kHalf || options.dtype() == at::kBFloat16)
      options = options.dtype(at::kFloat);
    A_ = torch::nn::Linear(
        torch::nn::LinearOptions(layer.in_features(), r).bias(false));
    B_ = torch::nn::Linear(
        torch::nn::LinearOptions(r, layer.out_features()).bias(lora_bias_));
    A_->to(options.device(), options.dtype().toScalarType());
    B_->to(options.device(), options.dtype().toScalarType());
    initialise(config.init_lora_weights, r);
    add_to_container(layer, "lora_A", name_, A_.ptr());
    add_to_container(layer, "lora_B", name_, B_.ptr());
    if (use_dora_) {
      // m starts as the row norm of W + s B A, so DoRA is the identity at
      // init exactly when LoRA is.
      at::NoGradGuard no_grad;
      magnitude_ = add_parameter_to_container(
          layer, "lora_magnitude_vector", name_,
          weight_norm(layer.weight.to(options.dtype().toScalarType()),
                      lora_weight())
              .set_requires_grad(true));
    }
  }

  // y + s B A dropout(x), or DoRA's correction (PEFT's DoraLinearLayer).
  at::Tensor transform_output(const models::LinearImpl& layer,
                              const at::Tensor& x,
                              const at::Tensor& y) override {
    if (!enabled_ || merged_)
      return y;
    const bool drop = dropout_ > 0 && layer.is_training();
    at::Tensor input = x.scalar_type() == A_->weight.scalar_type()
                           ? x
                           : x.to(A_->weight.scalar_type());
    if (!use_dora_) {
      if (drop)
        input = at::dropout(input, dropout_, /*train=*/true);
      const at::Tensor h = A_(input);  // [..., r]
      // Inference: y += s h B^T in place, one addmm_ instead of three
      // activation-sized temporaries (B h, * s, y + ...); y is the layer's
      // fresh output (LinearHook's contract) and autograd does not track it.
      const bool tracked = at::GradMode::is_enabled() &&
                           (y.requires_grad() || B_->weight.requires_grad() ||
                            h.requires_grad());
      // In-place ops are not autocast: the fast path only when every
      // operand already has y's dtype.
      if (!tracked && !lora_bias_ && y.is_contiguous() &&
          h.scalar_type() == y.scalar_type() &&
          B_->weight.scalar_type() == y.scalar_type()) {
        y.view({-1, y.size(-1)})
            .addmm_(h.reshape({-1, h.size(-1)}), B_->weight.t(),
                    /*beta=*/1, /*alpha=*/scaling_);
        return y;
      }
      return y + (B_(h) * scaling_).to(y.scalar_type());
    }
    // DoRA: as PEFT, in eval (or without dropout) the base output y is
    // reused; with dropout the base output is recomputed on dropout(x).
    at::Tensor base_result;
    if (drop) {
      input = at::dropout(input, dropout_, /*train=*/true);
      base_result = at::linear(input, layer.weight.to(input.scalar_type()));
    } else {
      base_result =
          (layer.bias.defined() ? y - layer.bias : y).to(input.scalar_type());
    }
    const at::Tensor norm =
        weight_norm(layer.weight.to(input.scalar_type()),
                    lora_weight().detach().to(input.scalar_type()))
            .detach();
    const at::Tensor mag_norm_scale = (magnitude_ / norm).view({1, -1});
    const at::Tensor lora_result = B_(A_(input));
    return y + ((mag_norm_scale - 1) * base_result +
                mag_norm_scale * lora_result * scaling_)
                   .to(y.scalar_type());
  }

  // Relative to the layer: "lora_A.<name>.weight", "lora_B.<name>.weight"
  // (+ ".bias"), "lora_magnitude_vector.<name>".
  NamedTensors named_parameters() const {
    NamedTensors out{{"lora_A." + name_ + ".weight", A_->weight},
                     {"lora_B." + name_ + ".weight", B_->weight}};
    if (lora_bias_)
      out.emplace_back("lora_B." + name_ + ".bias", B_->bias);
    if (use_dora_)
      out.emplace_back("lora_magnitude_vector." + name_, magnitude_);
    return out;
  }

  void set_enabled(bool enabled) { enabled_ = enabled; }
  bool merged() const { return merged_; }

  // Throws, changing nothing, if merging would give a non-finite weight.
  void check_merge() const { merged_tensors(/*check=*/true); }

  // W += s B A (DoRA: W = m / ||W + s B A|| (W + s B A)); b += s b_B.
  void merge() {
    if (merged_)
      return;
    at::NoGradGuard no_grad;
    auto [merged_weight, merged_bias, norm] = merged_tensors(/*check=*/false);
    if (use_dora_)
      dora_norm_ = norm;
    layer_.weight.copy_(merged_weight);
    if (merged_bias.defined())
      layer_.bias.copy_(merged_bias);
    merged_ = true;
  }

 private:
  std::tuple<at::Tensor, at::Tensor, at::Tensor> merged_tensors(
      bool check) const {
    at::NoGradGuard no_grad;
    const at::Tensor& weight = layer_.weight;
    const at::Tensor delta = delta_weight().to(weight.scalar_type());
    at::Tensor merged_weight;
    at::Tensor norm;
    if (use_dora_) {
      norm = weight_norm(weight, delta, /*scale=*/1.0).detach();
      const at::Tensor factor = (magnitude_ / norm).view({-1, 1});
      merged_weight = factor * (weight + delta);
    } else {
      merged_weight = weight + delta;
    }
    at::Tensor merged_bias;
    if (lora_bias_) {
      if (!layer_.bias.defined()) {
        throw std::runtime_error(error_message(
            "merge_adapter", "a base layer with a bias for lora_bias",
            "a layer without bias"));
      }
      merged_bias = layer_.bias + B_->bias * scaling_;
    }
    if (check)
      require_finite_merge(merged_weight, merged_bias, name_);
    if (merged_bias.defined())
      merged_bias = merged_bias.to(layer_.bias.scalar_type());
    return {merged_weight, merged_bias, norm};
  }

 public:
  void unmerge() {
    if (!merged_)
      return;
    at::NoGradGuard no_grad;
    at::Tensor& weight = layer_.weight;
    const at::Tensor delta = delta_weight().to(weight.scalar_type());
    if (use_dora_) {
      const at::Tensor factor = (magnitude_ / dora_norm_).view({-1, 1});
      weight.copy_(weight / factor - delta);
    } else {
      weight.sub_(delta);
    }
    if (lora_bias_)
      layer_.bias.sub_(B_->bias * scaling_);
    merged_ = false;
  }

  void remove() {
    remove_from_container(layer_, "lora_A", name_);
    remove_from_container(layer_, "lora_B", name_);
    if (use_dora_)
      remove_from_container(layer_, "lora_magnitude_vector", name_);
  }

 private:
  void initialise(LoraInit init, int64_t r) {
    at::NoGradGuard no_grad;
    switch (init) {
      case LoraInit::kDefault:  // nn.Linear's kaiming-uniform(a=sqrt(5))
        torch::nn::init::kaiming_uniform_(A_->weight, std::sqrt(5.0));
        break;
      case LoraInit::kGaussian:
        torch::nn::init::normal_(A_->weight, 0.0, 1.0 / static_cast<double>(r));
        break;
      case LoraInit::kNone:  // both as nn.Linear: not the identity
        return;
    }
    B_->weight.zero_();
    if (lora_bias_)
      B_->bias.zero_();
  }

  // B A: [out, r] @ [r, in] -> [out, in].
  at::Tensor lora_weight() const { return at::matmul(B_->weight, A_->weight); }
  at::Tensor delta_weight() const { return lora_weight() * scaling_; }

  // ||W + scale * lora||_2 over each output row: [out].
  at::Tensor weight_norm(const at::Tensor& weight, const at::Tensor& lora,
                         std::optional<double> scale = std::nullopt) const {
    return at::linalg_vector_norm(weight + scale.value_or(scaling_) * lora,
                                  /*ord=*/2, /*dim=*/{1});
  }

  models::LinearImpl& layer_;
  std::string name_;
  double scaling_;
  double dropout_;
  bool use_dora_;
  bool lora_bias_;
  torch::nn::Linear A_{nullptr};
  torch::nn::Linear B_{nullptr};
  at::Tensor magnitude_;
  at::Tensor dora_norm_;  // the norm a DoRA merge divided by
  bool enabled_ = false;
  bool merged_ = false;
};

// LoRA's hooks, plus the base biases its bias policy trains.
class LoraAdapter final : public LinearHookAdapter<LoraHook> {
 public:
  explicit LoraAdapter(std::string name)
      : LinearHookAdapter(std::move(name), "lora") {}

  void add_trained_bias(std::string name, at::Tensor bias) {
    biases_.emplace_back(std::move(name), std::move(bias));
  }

  NamedTensors named_parameters() const override {
    NamedTensors out = LinearHookAdapter::named_parameters();
    out.insert(out.end(), biases_.begin(), biases_.end());
    return out;
  }

 private:
  NamedTensors biases_;
};

void validate(const LoraConfig& c, const std::string& name) {
  const std::string where = "add_lora(" + name + ")";
  if (c.r < 1) {
    throw std::invalid_argument(
        error_message(where, "r >= 1", "r = " + std::to_string(c.r)));
  }
  for (const auto& [key, r] : c.rank_pattern) {
    if (r < 1) {
      throw std::invalid_argument(
          error_message(where, "rank_pattern ranks >= 1",
                        "\"" + key + "\": " + std::to_string(r)));
    }
  }
  if (c.lora_dropout < 0 || c.lora_dropout >= 1) {
    throw std::invalid_argument(error_message(where, "lora_dropout in [0, 1)",
                                              std::to_string(c.lora_dropout)));
  }
  if (c.bias != "none" && c.bias != "all" && c.bias != "lora_only") {
    throw std::invalid_argument(
        error_message(where, "bias \"none\", \"all\" or \"lora_only\"",
                      "\"" + c.bias + "\""));
  }
  if (c.use_dora && c.lora_bias) {
    throw std::invalid_argument(
        error_message(where, "use_dora and lora_bias not both set", "both",
                      "PEFT does not combine DoRA with a LoRA bias either"));
  }
}

}  // namespace

std::vector<std::string> default_lora_targets(const std::string& model_type) {
  static const std::map<std::string, std::vector<std::string>> kDefaults = {
      {"bert", {"query", "value"}},        {"roberta", {"query", "value"}},
      {"xlm-roberta", {"query", "value"}}, {"gpt2", {"c_attn"}},
      {"llama", {"q_proj", "v_proj"}},     {"mistral", {"q_proj", "v_proj"}},
      {"qwen2", {"q_proj", "v_proj"}},
  };
  const auto it = kDefaults.find(model_type);
  if (it == kDefaults.end()) {
    std::vector<std::string> known;
    for (const auto& [type, targets] : kDefaults)
      known.push_back(type);
    throw std::invalid_argument(error_message(
        "add_lora",
        "a model type with default targets (" + join_names(known) + ")",
        "\"" + model_type + "\"", "set target_modules explicitly"));
  }
  return it->second;
}

std::unique_ptr<Adapter> add_lora(const AdapterContext& ctx,
                                  const std::string& name, LoraConfig& config) {
  validate(config, name);
  if (config.target_modules.empty())
    config.target_modules =
        ModuleSelector::list(default_lora_targets(ctx.info.model_type));
  const TargetSpec spec{config.target_modules, config.exclude_modules,
                        config.layers_to_transform, config.layers_pattern,
                        ctx.modules_to_save};
  const auto layers =
      select_target_linears(*ctx.root, spec, "add_lora(" + name + ")");
  // PEFT writes the weight layout into the config: each targeted layer sets
  // fan_in_fan_out to whether it is a Conv1D, so the last one decides. Our
  // weights are [out, in] either way, so the hooks do not need it.
  config.fan_in_fan_out = is_conv1d(ctx.info, layers.back().first);
  auto adapter = std::make_unique<LoraAdapter>(name);
  for (const auto& [module_name, layer] : layers) {
    const int64_t* r = find_pattern_value(config.rank_pattern, module_name);
    const double* alpha = find_pattern_value(config.alpha_pattern, module_name);
    auto hook =
        std::make_shared<LoraHook>(*layer, name, r ? *r : config.r,
                                   alpha ? *alpha : config.lora_alpha, config);
    adapter->attach(module_name, layer, hook);
  }
  // PEFT's bias policy: "all" trains (and saves) every bias of the model,
  // "lora_only" the biases of the targeted layers.
  // PEFT wraps a targeted layer, so its bias is saved as
  // "<layer>.base_layer.bias"; other biases keep their names.
  std::set<std::string> targeted;
  for (const auto& [module_name, layer] : layers) {
    if (layer->bias.defined())
      targeted.insert(module_name + ".bias");
  }
  const auto saved_bias_name = [&](const std::string& key) {
    return targeted.count(key)
               ? key.substr(0, key.size() - 5) + ".base_layer.bias"
               : key;
  };
  // Biases inside modules_to_save train with the adapter's copy instead.
  const auto in_saved_module = [&](const std::string& key) {
    for (const auto& m : ctx.modules_to_save) {
      if (key.rfind(m + ".", 0) == 0 ||
          key.find("." + m + ".") != std::string::npos)
        return true;
    }
    return false;
  };
  if (config.bias == "all") {
    for (const auto& item : ctx.root->named_parameters()) {
      const std::string& key = item.key();
      if (key.size() >= 5 && key.compare(key.size() - 5, 5, ".bias") == 0 &&
          key.find(".lora_") == std::string::npos &&
          key.find(".modules_to_save.") == std::string::npos &&
          !in_saved_module(key))
        adapter->add_trained_bias(saved_bias_name(key), item.value());
    }
  } else if (config.bias == "lora_only") {
    for (const auto& [module_name, layer] : layers) {
      if (layer->bias.defined())
        adapter->add_trained_bias(saved_bias_name(module_name + ".bias"),
                                  layer->bias);
    }
  }
  return adapter;
}

}  // namespace peftcpp::peft
