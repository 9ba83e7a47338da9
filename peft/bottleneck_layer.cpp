#include "peft/bottleneck_layer.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/nn/init.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <regex>
#include <set>
#include <stdexcept>

#include "common/error.h"
#include "peft/bottleneck.h"

namespace peftcpp::peft::detail {
namespace {

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

}  // namespace

// --- one adapter in one slot: AdapterHub's Adapter / ParallelAdapter -------

BottleneckLayerImpl::BottleneckLayerImpl(const BottleneckConfig& c,
                                         int64_t hidden, int64_t bottleneck,
                                         models::Activation act)
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

std::pair<at::Tensor, at::Tensor> BottleneckLayerImpl::pre_forward(
    const at::Tensor& h, const at::Tensor& x, const SumNorm& norm) const {
  if (c_.is_parallel)
    return {x, x};
  if (!c_.original_ln_before)
    return {h, h};
  const at::Tensor sum = h + x;
  const at::Tensor z = norm ? norm(sum) : sum;
  return {z, c_.residual_before_ln ? h : z};
}

at::Tensor BottleneckLayerImpl::forward(const at::Tensor& z,
                                        const at::Tensor& r) {
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

at::Tensor BottleneckLayerImpl::post_forward(at::Tensor o, const at::Tensor& h,
                                             const at::Tensor& x,
                                             const SumNorm& norm) const {
  if (c_.is_parallel)
    o = o + h;
  if (!c_.original_ln_after)
    return o;
  return norm ? norm(o + x) : o + x;
}

std::vector<std::string> BottleneckLayerImpl::saved_aliases(
    const std::string& param) const {
  if (norm_before_ && param.rfind("adapter_norm_before.", 0) == 0)
    return {"adapter_down.0." + param.substr(20)};
  return {};
}

void BottleneckLayerImpl::initialise() {
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

// --- the slot: AdapterHub's BottleneckLayer ---------------------------------

void BottleneckStack::add(const std::string& name,
                          std::shared_ptr<BottleneckLayerImpl> adapter) {
  holder_->register_module(name, adapter);
  order_.emplace_back(name, std::move(adapter));
}

void BottleneckStack::remove(const std::string& name) {
  const auto it = std::find_if(order_.begin(), order_.end(),
                               [&](const auto& e) { return e.first == name; });
  if (it == order_.end())
    return;
  order_.erase(it);
  holder_->unregister_module(name);
}

bool BottleneckStack::has(const std::string& name) const {
  return holder_->named_children().find(name) != nullptr;
}

at::Tensor BottleneckStack::forward(const at::Tensor& hidden,
                                    const at::Tensor& residual,
                                    const SumNorm& norm) const {
  BottleneckLayerImpl* last = nullptr;
  at::Tensor h = hidden;
  for (const auto& [adapter_name, adapter] : order_) {
    if (!adapter->enabled)
      continue;
    auto [z, r] = adapter->pre_forward(h, residual, norm);
    h = adapter->forward(z, r);
    last = adapter.get();
  }
  if (last == nullptr)
    return norm ? norm(hidden + residual) : hidden + residual;
  return last->post_forward(h, hidden, residual, norm);
}

// --- the model-level adapter ------------------------------------------------

namespace {

struct Placement {
  std::string path;  // "bert.encoder.layer.0.output"
  BottleneckStack* stack;
  std::function<void()> release;
  std::shared_ptr<BottleneckLayerImpl> adapter;
};

// The part of a saved key that does not depend on the base-model prefix or
// the adapter name: "bert.encoder.layer.0.output.adapters.a.adapter_up.weight"
// -> "encoder.layer.0.output.adapters.*.adapter_up.weight",
// "transformer.h.0.output_adapters.adapters.a.adapter_up.weight" ->
// "h.0.output_adapters.adapters.*.adapter_up.weight"; "" for a key that is
// not an adapter key. Sets `name` to the adapter name in it.
std::string normalized_key(const std::string& key, std::string* name) {
  static const std::regex kPattern(
      R"((?:^|.*\.)((?:encoder\.layer\.\d+\.(?:attention\.)?output|(?:h|layers)\.\d+\.(?:attention|output)_adapters)\.adapters\.)([^.]+)(\..+))");
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
      p.stack->remove(name());
      if (p.stack->empty())
        p.release();
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

int64_t num_layers(const std::vector<SlotSite>& sites) {
  std::set<int64_t> layers;
  for (const auto& s : sites)
    layers.insert(s.layer);
  return static_cast<int64_t>(layers.size());
}

}  // namespace

std::unique_ptr<Adapter> build_bottleneck(const std::vector<SlotSite>& sites,
                                          const std::string& name,
                                          const BottleneckConfig& config,
                                          const std::string& where) {
  const models::Activation act =
      bottleneck_activation(config.non_linearity, where);
  std::vector<const SlotSite*> chosen;
  for (const auto& s : sites) {
    const bool wanted = s.attention ? config.mh_adapter : config.output_adapter;
    const bool left_out =
        std::find(config.leave_out.begin(), config.leave_out.end(), s.layer) !=
        config.leave_out.end();
    if (wanted && !left_out)
      chosen.push_back(&s);
  }
  if (chosen.empty()) {
    std::vector<std::string> left;
    for (int64_t i : config.leave_out)
      left.push_back(std::to_string(i));
    throw std::invalid_argument(error_message(
        where, "at least one place for the adapter",
        "mh_adapter " + std::string(config.mh_adapter ? "true" : "false") +
            ", output_adapter " + (config.output_adapter ? "true" : "false") +
            ", leave_out [" + join_names(left) + "] on a model of " +
            std::to_string(num_layers(sites)) + " layers",
        "set mh_adapter or output_adapter, or leave fewer layers out"));
  }
  // Sizes and slots first: a bad factor must not leave half an adapter
  // behind.
  std::vector<int64_t> sizes;
  for (const SlotSite* s : chosen) {
    BottleneckStack* existing = s->existing(where);
    if (existing != nullptr && existing->has(name)) {
      throw std::invalid_argument(
          error_message(where, "a new adapter name at " + s->path,
                        "\"" + name + "\" (in use)"));
    }
    sizes.push_back(bottleneck_size(config, s->hidden, s->layer));
  }

  auto adapter = std::make_unique<BottleneckAdapter>(name);
  for (size_t i = 0; i < chosen.size(); ++i) {
    const SlotSite& s = *chosen[i];
    auto layer =
        std::make_shared<BottleneckLayerImpl>(config, s.hidden, sizes[i], act);
    layer->to(s.reference.device(), s.reference.scalar_type());
    layer->train(s.training);
    BottleneckStack* stack = s.existing(where);
    if (stack == nullptr)
      stack = s.create();
    stack->add(name, layer);
    adapter->add(Placement{s.path, stack, s.release, layer});
  }
  return adapter;
}

}  // namespace peftcpp::peft::detail
