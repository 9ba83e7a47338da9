#include "peft/bottleneck.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <regex>
#include <set>
#include <stdexcept>

#include "common/error.h"
#include "models/encoder/encoder_model.h"
#include "models/layers/activation.h"

namespace peftcpp::peft {
namespace {

// --- one adapter in one slot: AdapterHub's Adapter / ParallelAdapter -------

// torch.nn.init.trunc_normal_: inverse-CDF sampling, as PyTorch writes it.
void trunc_normal_(at::Tensor t, double mean, double std, double a, double b) {
  auto cdf = [](double x) { return (1.0 + std::erf(x / std::sqrt(2.0))) / 2; };
  const double l = cdf((a - mean) / std);
  const double u = cdf((b - mean) / std);
  t.uniform_(2 * l - 1, 2 * u - 1);
  t.erfinv_();
  t.mul_(std * std::sqrt(2.0));
  t.add_(mean);
  t.clamp_(a, b);
}

// AdapterHub's Adapter.init_bert_weights on a Linear.
void init_bert(torch::nn::LinearImpl& linear) {
  linear.weight.normal_(0.0, 0.02);
  linear.bias.zero_();
}

class BottleneckLayerImpl : public torch::nn::Module {
 public:
  BottleneckLayerImpl(const BottleneckConfig& c, int64_t hidden,
                      int64_t bottleneck, models::Activation act)
      : torch::nn::Module("Adapter"), c_(c), act_(act) {
    // Registration order is AdapterHub's state_dict order.
    if (c.scaling_mode == "learned")
      scale_ = register_parameter("scaling", at::ones({1}));
    else if (c.scaling_mode == "channel")
      scale_ = register_parameter("scaling", at::ones({hidden}));
    // AdapterHub registers the input LayerNorm twice, as adapter_norm_before
    // and as adapter_down.0 (one module): we register it once, under the
    // first name, as PyTorch's named_parameters() reports it; the saved
    // form carries both (see saved_aliases).
    if (c.ln_before) {
      norm_before_ = register_module(
          "adapter_norm_before",
          torch::nn::LayerNorm(torch::nn::LayerNormOptions({hidden})));
    }
    auto down = register_module(
        "adapter_down", std::make_shared<torch::nn::Module>("Sequential"));
    down_ = down->register_module(c.ln_before ? "1" : "0",
                                  torch::nn::Linear(hidden, bottleneck));
    up_ = register_module("adapter_up", torch::nn::Linear(bottleneck, hidden));
    if (c.ln_after) {
      norm_after_ = register_module(
          "adapter_norm_after",
          torch::nn::LayerNorm(torch::nn::LayerNormOptions({hidden})));
    }
    if (c.use_gating)
      gate_ = register_module("gate", torch::nn::Linear(hidden, 1));
    initialise();
  }

  // AdapterHub's pre_forward: the adapter's input z and residual r from the
  // sub-layer output h (or the previous stacked adapter's output) and x.
  std::pair<at::Tensor, at::Tensor> pre_forward(
      const at::Tensor& h, const at::Tensor& x,
      torch::nn::LayerNorm& layer_norm) const {
    if (c_.is_parallel)
      return {x, x};
    at::Tensor z = c_.original_ln_before ? layer_norm(h + x) : h;
    return {z, c_.residual_before_ln ? h : z};
  }

  // AdapterHub's forward: [B, T, H] -> [B, T, H].
  at::Tensor forward(const at::Tensor& z, const at::Tensor& r) {
    at::Tensor in = norm_before_ ? norm_before_(z) : z;
    at::Tensor u = up_(models::apply_activation(down_(in), act_));
    if (!c_.is_parallel && c_.stochastic_depth > 0.0 && is_training()) {
      // torchvision's StochasticDepth(p, "row"): keep each sequence with
      // probability 1 - p, rescaled by 1 / (1 - p).
      const double keep = 1.0 - c_.stochastic_depth;
      std::vector<int64_t> shape(u.dim(), 1);
      shape[0] = u.size(0);
      at::Tensor noise = at::empty(shape, u.options()).bernoulli_(keep);
      if (keep > 0.0)
        noise.div_(keep);
      u = u * noise;
    }
    u = scale_.defined() ? u * scale_ : u * c_.scaling;
    at::Tensor o = at::dropout(u, c_.dropout, is_training());
    if (gate_) {
      // [B, T, 1] -> mean over T -> [B, 1, 1]
      o = o * at::sigmoid(gate_(z)).mean(/*dim=*/1).unsqueeze(-1);
    }
    if (c_.is_parallel)
      return norm_after_ ? norm_after_(o) : o;
    if (c_.adapter_residual_before_ln)
      o = o + r;
    if (norm_after_)
      o = norm_after_(o);
    if (!c_.adapter_residual_before_ln)
      o = o + r;
    return o;
  }

  // AdapterHub's post_forward, with h the slot's original input.
  at::Tensor post_forward(at::Tensor o, const at::Tensor& h,
                          const at::Tensor& x,
                          torch::nn::LayerNorm& layer_norm) const {
    if (c_.is_parallel)
      o = o + h;
    return c_.original_ln_after ? layer_norm(o + x) : o;
  }

  // Extra saved names of a parameter: the input LayerNorm is also
  // "adapter_down.0.*" in AdapterHub's state dict.
  std::vector<std::string> saved_aliases(const std::string& param) const {
    if (norm_before_ && param.rfind("adapter_norm_before.", 0) == 0)
      return {"adapter_down.0." + param.substr(20)};
    return {};
  }

  bool enabled = false;

 private:
  void initialise() {
    at::NoGradGuard no_grad;
    // AdapterHub's fix_seed: `if seed:`, so 0 does not reseed.
    if (c_.init_weights_seed && *c_.init_weights_seed != 0)
      at::manual_seed(static_cast<uint64_t>(*c_.init_weights_seed));
    if (c_.init_weights == "bert") {
      init_bert(*down_);
      init_bert(*up_);
      if (gate_)
        init_bert(*gate_);
    } else if (c_.init_weights == "mam_adapter") {
      torch::nn::init::kaiming_uniform_(down_->weight, std::sqrt(5.0));
      down_->bias.zero_();
      up_->weight.zero_();
      up_->bias.zero_();
      if (gate_)
        init_bert(*gate_);
    } else {  // "houlsby"; the gate keeps nn.Linear's init
      trunc_normal_(down_->weight, 0, 1e-2, -2e-2, 2e-2);
      down_->bias.zero_();
      trunc_normal_(up_->weight, 0, 1e-2, -2e-2, 2e-2);
      up_->bias.zero_();
    }
  }

  BottleneckConfig c_;
  models::Activation act_;
  at::Tensor scale_;
  torch::nn::LayerNorm norm_before_{nullptr};
  torch::nn::Linear down_{nullptr};
  torch::nn::Linear up_{nullptr};
  torch::nn::LayerNorm norm_after_{nullptr};
  torch::nn::Linear gate_{nullptr};
};

// --- the slot: AdapterHub's BottleneckLayer ---------------------------------

// Holds the adapters of one sub-layer as children named by adapter name
// (registered as "adapters", so "...output.adapters.<name>.adapter_up").
class BottleneckSlot final : public models::SublayerAdapter {
 public:
  void add(const std::string& name,
           std::shared_ptr<BottleneckLayerImpl> adapter) {
    register_module(name, adapter);
    order_.emplace_back(name, std::move(adapter));
  }

  void remove(const std::string& name) {
    const auto it =
        std::find_if(order_.begin(), order_.end(),
                     [&](const auto& e) { return e.first == name; });
    if (it == order_.end())
      return;
    order_.erase(it);
    unregister_module(name);
  }

  bool has(const std::string& name) const {
    return named_children().find(name) != nullptr;
  }
  bool empty() const { return order_.empty(); }

  // The enabled adapters as AdapterHub's Stack: each one's pre_forward on
  // the previous output, the last one's post_forward. None enabled: the
  // base sub-layer.
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& residual,
                     torch::nn::LayerNorm& layer_norm) override {
    BottleneckLayerImpl* last = nullptr;
    at::Tensor h = hidden;
    for (auto& [adapter_name, adapter] : order_) {
      if (!adapter->enabled)
        continue;
      auto [z, r] = adapter->pre_forward(h, residual, layer_norm);
      h = adapter->forward(z, r);
      last = adapter.get();
    }
    if (last == nullptr)
      return layer_norm(hidden + residual);
    return last->post_forward(h, hidden, residual, layer_norm);
  }

 private:
  std::vector<std::pair<std::string, std::shared_ptr<BottleneckLayerImpl>>>
      order_;
};

// --- the model-level adapter ------------------------------------------------

struct Placement {
  std::string path;  // "bert.encoder.layer.0.output"
  std::shared_ptr<models::SublayerOutputImpl> sublayer;
  std::shared_ptr<BottleneckSlot> slot;
  std::shared_ptr<BottleneckLayerImpl> adapter;
};

// The part of a saved key that does not depend on the base-model prefix or
// the adapter name: "bert.encoder.layer.0.output.adapters.a.adapter_up.weight"
// -> "encoder.layer.0.output.adapters.*.adapter_up.weight"; "" for a key that
// is not an adapter key. Sets `name` to the adapter name in it.
std::string normalized_key(const std::string& key, std::string* name) {
  static const std::regex kPattern(
      R"((?:^|.*\.)(encoder\.layer\.\d+\.(?:attention\.)?output\.adapters\.)([^.]+)(\..+))");
  std::smatch m;
  if (!std::regex_match(key, m, kPattern))
    return "";
  if (name != nullptr)
    *name = m[2].str();
  return m[1].str() + "*" + m[3].str();
}

class BottleneckAdapter final : public Adapter {
 public:
  explicit BottleneckAdapter(std::string name) : Adapter(std::move(name)) {}

  void add(Placement p) { placements_.push_back(std::move(p)); }

  NamedTensors named_parameters() const override {
    NamedTensors out;
    for (const auto& p : placements_) {
      for (const auto& item : p.adapter->named_parameters())
        out.emplace_back(prefix_of(p) + item.key(), item.value());
    }
    return out;
  }

  void set_enabled(bool enabled) override {
    for (auto& p : placements_)
      p.adapter->enabled = enabled;
  }

  void remove() override {
    for (auto& p : placements_) {
      p.slot->remove(name());
      if (p.slot->empty() && p.sublayer->adapter() == p.slot)
        p.sublayer->set_adapter(nullptr);
    }
    placements_.clear();
  }

  // AdapterHub's keys, adapter name kept, relative to the root; `prefix` is
  // for PEFT-style methods and ignored. The input LayerNorm appears under
  // both of its AdapterHub names.
  TensorMap state_dict_to_save(const std::string& /*prefix*/) const override {
    TensorMap out;
    for (const auto& p : placements_) {
      for (const auto& item : p.adapter->named_parameters()) {
        out[prefix_of(p) + item.key()] = item.value().detach();
        for (const auto& alias : p.adapter->saved_aliases(item.key()))
          out[prefix_of(p) + alias] = item.value().detach();
      }
    }
    return out;
  }

  // Keys may carry any adapter name (AdapterHub's load_as renames
  // ".adapters.<saved>." to ours) and either base-model prefix ("bert." or
  // none: a head model's file loads into a bare encoder and back).
  std::vector<std::string> load_saved(const TensorMap& saved,
                                      const std::string& /*prefix*/,
                                      const std::string& where) override {
    std::map<std::string, std::string> by_normalized;  // -> saved key
    std::set<std::string> names;
    for (const auto& [key, tensor] : saved) {
      std::string n;
      if (!normalized_key(key, &n).empty())
        names.insert(n);
    }
    // The saved name: ours if present, else the only one.
    std::string saved_name = name();
    if (!names.count(saved_name)) {
      if (names.size() > 1) {
        throw std::runtime_error(error_message(
            "load_adapter", "the tensors of one adapter in " + where,
            "adapters [" + join_names(names) + "]",
            "save each adapter in a folder of its own"));
      }
      if (names.size() == 1)
        saved_name = *names.begin();
    }
    for (const auto& [key, tensor] : saved) {
      std::string n;
      const std::string norm = normalized_key(key, &n);
      if (!norm.empty() && n == saved_name)
        by_normalized.emplace(norm, key);
    }

    std::vector<std::pair<at::Tensor, at::Tensor>> copies;
    std::vector<std::string> used;
    for (const auto& p : placements_) {
      for (const auto& item : p.adapter->named_parameters()) {
        // The key as AdapterHub would have saved it under saved_name.
        const std::string ours = prefix_of(p) + item.key();
        std::string shown = ours;
        const std::string tag = ".adapters." + name() + ".";
        shown.replace(shown.find(tag), tag.size(),
                      ".adapters." + saved_name + ".");
        std::vector<std::string> candidates{item.key()};
        for (const auto& alias : p.adapter->saved_aliases(item.key()))
          candidates.push_back(alias);
        const at::Tensor* found = nullptr;
        for (const auto& c : candidates) {
          const auto it =
              by_normalized.find(normalized_key(prefix_of(p) + c, nullptr));
          if (it == by_normalized.end())
            continue;
          used.push_back(it->second);
          if (found == nullptr) {
            found = &saved.at(it->second);
            shown = it->second;
          }
        }
        if (found == nullptr) {
          throw std::runtime_error(error_message(
              "load_adapter", "tensor \"" + shown + "\" in " + where, "none",
              "the adapter was saved for another model class or with "
              "another bottleneck config"));
        }
        if (found->sizes() != item.value().sizes()) {
          throw std::runtime_error(error_message(
              "load_adapter",
              "tensor \"" + shown + "\" of shape " +
                  c10::str(item.value().sizes()),
              c10::str(found->sizes()) + " in " + where,
              "maybe wrong base model? The adapter does not fit this "
              "model's dimensions"));
        }
        copies.emplace_back(item.value(), *found);
      }
    }
    at::NoGradGuard no_grad;
    for (auto& [param, value] : copies)
      param.copy_(value);
    return used;
  }

 private:
  std::string prefix_of(const Placement& p) const {
    return p.path + ".adapters." + name() + ".";
  }

  std::vector<Placement> placements_;
};

struct Slot {
  std::string path;
  int64_t layer;
  bool attention;  // attention.output (mh_adapter), else output
  std::shared_ptr<models::SublayerOutputImpl> sublayer;
};

// The adapter slots of every encoder layer under `root`, in module order.
std::vector<Slot> find_slots(torch::nn::Module& root) {
  static const std::regex kPattern(
      R"((?:.*\.)?encoder\.layer\.(\d+)\.(attention\.output|output))");
  std::vector<Slot> out;
  for (const auto& item : root.named_modules(/*name_prefix=*/"",
                                             /*include_self=*/false)) {
    auto sublayer =
        std::dynamic_pointer_cast<models::SublayerOutputImpl>(item.value());
    std::smatch m;
    if (!sublayer || !std::regex_match(item.key(), m, kPattern))
      continue;
    out.push_back(Slot{item.key(), std::stoll(m[1].str()),
                       m[2].str() == "attention.output", sublayer});
  }
  return out;
}

int64_t num_layers(const std::vector<Slot>& slots) {
  std::set<int64_t> layers;
  for (const auto& s : slots)
    layers.insert(s.layer);
  return static_cast<int64_t>(layers.size());
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
  const models::Activation act =
      bottleneck_activation(config.non_linearity, where);
  const std::vector<Slot> slots = find_slots(*ctx.root);
  if (slots.empty()) {
    throw std::invalid_argument(
        error_message(where,
                      "a BERT-family encoder with adapter slots "
                      "(encoder.layer.<i>.attention.output / .output)",
                      "a model without them"));
  }
  std::vector<const Slot*> chosen;
  for (const auto& s : slots) {
    const bool wanted = s.attention ? config.mh_adapter : config.output_adapter;
    const bool left_out =
        std::find(config.leave_out.begin(), config.leave_out.end(), s.layer) !=
        config.leave_out.end();
    if (wanted && !left_out)
      chosen.push_back(&s);
  }
  if (chosen.empty()) {
    throw std::invalid_argument(error_message(
        where, "at least one place for the adapter",
        "mh_adapter " + std::string(config.mh_adapter ? "true" : "false") +
            ", output_adapter " + (config.output_adapter ? "true" : "false") +
            ", leave_out [" + join_names([&] {
              std::vector<std::string> v;
              for (int64_t i : config.leave_out)
                v.push_back(std::to_string(i));
              return v;
            }()) +
            "] on a model of " + std::to_string(num_layers(slots)) + " layers",
        "set mh_adapter or output_adapter, or leave fewer layers out"));
  }
  // Sizes first: a bad factor must not leave half an adapter behind.
  std::vector<int64_t> sizes;
  for (const Slot* s : chosen) {
    auto existing =
        std::dynamic_pointer_cast<BottleneckSlot>(s->sublayer->adapter());
    if (s->sublayer->adapter() && !existing) {
      throw std::invalid_argument(
          error_message(where, "a free adapter slot at " + s->path,
                        "a slot holding another kind of adapter"));
    }
    if (existing && existing->has(name)) {
      throw std::invalid_argument(
          error_message(where, "a new adapter name at " + s->path,
                        "\"" + name + "\" (in use)"));
    }
    // AdapterHub sizes by model_config.hidden_size: the LayerNorm's width.
    sizes.push_back(bottleneck_size(
        config, s->sublayer->LayerNorm->weight.size(0), s->layer));
  }

  auto adapter = std::make_unique<BottleneckAdapter>(name);
  for (size_t i = 0; i < chosen.size(); ++i) {
    const Slot& s = *chosen[i];
    const at::Tensor& ref = s.sublayer->LayerNorm->weight;
    auto layer = std::make_shared<BottleneckLayerImpl>(config, ref.size(0),
                                                       sizes[i], act);
    layer->to(ref.device(), ref.scalar_type());
    layer->train(s.sublayer->is_training());
    auto slot =
        std::dynamic_pointer_cast<BottleneckSlot>(s.sublayer->adapter());
    if (!slot) {
      slot = std::make_shared<BottleneckSlot>();
      slot->train(s.sublayer->is_training());
      s.sublayer->set_adapter(slot);
    }
    slot->add(name, layer);
    adapter->add(Placement{s.path, s.sublayer, slot, layer});
  }
  return adapter;
}

}  // namespace peftcpp::peft
