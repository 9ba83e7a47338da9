#include "peft/modules_to_save.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/nn/modules/linear.h>

#include <set>
#include <stdexcept>

#include "common/error.h"
#include "models/layers/linear.h"
#include "peft/hook_containers.h"

namespace peftcpp::peft {
namespace {

constexpr const char* kContainer = "modules_to_save";

// The adapter's copy of one Linear: computes the layer's output instead of
// the original weights while enabled. (The original matmul still runs; a
// head is small.)
class HeadCopyHook final : public models::LinearHook {
 public:
  HeadCopyHook(models::LinearImpl& layer, const std::string& name)
      : layer_(layer), name_(name) {
    copy_ = torch::nn::Linear(
        torch::nn::LinearOptions(layer.in_features(), layer.out_features())
            .bias(layer.bias.defined()));
    at::NoGradGuard no_grad;
    copy_->to(layer.weight.device(), layer.weight.scalar_type());
    copy_->weight.copy_(layer.weight);
    if (layer.bias.defined())
      copy_->bias.copy_(layer.bias);
    add_to_container(layer, kContainer, name_, copy_.ptr());
  }

  at::Tensor transform_output(const models::LinearImpl& /*layer*/,
                              const at::Tensor& x,
                              const at::Tensor& y) override {
    if (!enabled_ || merged_)
      return y;
    return copy_(x);
  }

  void set_enabled(bool enabled) { enabled_ = enabled; }
  bool merged() const { return merged_; }

  // Merging a saved module means making the copy the layer's weights.
  void merge() {
    if (merged_)
      return;
    at::NoGradGuard no_grad;
    original_weight_ = layer_.weight.clone();
    layer_.weight.copy_(copy_->weight);
    if (layer_.bias.defined()) {
      original_bias_ = layer_.bias.clone();
      layer_.bias.copy_(copy_->bias);
    }
    merged_ = true;
  }
  void unmerge() {
    if (!merged_)
      return;
    at::NoGradGuard no_grad;
    layer_.weight.copy_(original_weight_);
    if (layer_.bias.defined())
      layer_.bias.copy_(original_bias_);
    merged_ = false;
  }
  void remove() { remove_from_container(layer_, kContainer, name_); }

 private:
  models::LinearImpl& layer_;
  std::string name_;
  torch::nn::Linear copy_{nullptr};
  at::Tensor original_weight_, original_bias_;
  bool enabled_ = false;
  bool merged_ = false;
};

struct Copied {
  std::string layer_name;
  std::shared_ptr<models::LinearImpl> layer;
  std::shared_ptr<HeadCopyHook> hook;
};

class ModulesToSave final : public Adapter {
 public:
  explicit ModulesToSave(std::string name) : Adapter(std::move(name)) {}
  void add(Copied c) { copies_.push_back(std::move(c)); }
  bool empty() const { return copies_.empty(); }
  std::string hook_key() const { return "modules_to_save:" + name(); }

  NamedTensors named_parameters() const override {
    NamedTensors out;
    const std::string own = std::string(kContainer) + "." + name() + ".";
    for (const auto& c : copies_) {
      for (const auto& item : c.layer->named_parameters()) {
        if (item.key().rfind(own, 0) == 0)
          out.emplace_back(c.layer_name + "." + item.key(), item.value());
      }
    }
    return out;
  }

  void set_enabled(bool enabled) override {
    for (auto& c : copies_)
      c.hook->set_enabled(enabled);
  }
  void remove() override {
    for (auto& c : copies_) {
      c.layer->detach_hook(hook_key());
      c.hook->remove();
    }
    copies_.clear();
  }
  bool mergeable() const override { return true; }
  bool merged() const override {
    return !copies_.empty() && copies_.front().hook->merged();
  }
  void merge(bool /*safe*/) override {
    for (auto& c : copies_)
      c.hook->merge();
  }
  void unmerge() override {
    for (auto& c : copies_)
      c.hook->unmerge();
  }

 protected:
  // "classifier.modules_to_save.default.weight" -> "classifier.weight".
  TensorMap state_dict_to_save(const std::string& prefix) const override {
    TensorMap out;
    for (const auto& [key, tensor] : named_parameters())
      out[saved_name(key, prefix)] = tensor.detach();
    return out;
  }

 public:
  std::vector<std::string> load_saved(const TensorMap& saved,
                                      const std::string& prefix,
                                      const std::string& where) override {
    // Same checks as Adapter::load_saved, on the PEFT key.
    std::vector<std::pair<at::Tensor, at::Tensor>> copies;
    std::vector<std::string> used;
    for (const auto& [key, param] : named_parameters()) {
      const std::string saved_key = saved_name(key, prefix);
      const auto it = saved.find(saved_key);
      if (it == saved.end()) {
        throw std::runtime_error(error_message(
            "load_adapter", "tensor \"" + saved_key + "\" in " + where,
            "none", "the adapter was saved without this head"));
      }
      if (it->second.sizes() != param.sizes()) {
        throw std::runtime_error(error_message(
            "load_adapter",
            "tensor \"" + saved_key + "\" of shape " +
                c10::str(param.sizes()),
            c10::str(it->second.sizes()) + " in " + where,
            "maybe wrong base model? A head for another number of labels "
            "does not fit either"));
      }
      copies.emplace_back(param, it->second);
      used.push_back(saved_key);
    }
    at::NoGradGuard no_grad;
    for (auto& [param, value] : copies)
      param.copy_(value);
    return used;
  }

 private:
  std::string saved_name(const std::string& key,
                         const std::string& prefix) const {
    const std::string segment =
        "." + std::string(kContainer) + "." + name() + ".";
    std::string out = key;
    if (const auto pos = out.find(segment); pos != std::string::npos)
      out.replace(pos, segment.size(), ".");
    return prefix + out;
  }

  std::vector<Copied> copies_;
};

bool name_matches(const std::string& module, const std::string& wanted) {
  return module == wanted ||
         (module.size() > wanted.size() &&
          module.compare(module.size() - wanted.size() - 1, wanted.size() + 1,
                         "." + wanted) == 0);
}

}  // namespace

std::unique_ptr<Adapter> add_modules_to_save(
    const AdapterContext& ctx, const std::string& name,
    const std::vector<std::string>& module_names, bool required) {
  // Validate every module before attaching anything, so a refused module
  // leaves no hooks behind.
  std::vector<std::pair<std::string, std::shared_ptr<models::LinearImpl>>>
      linears;
  std::set<std::string> taken;
  for (const auto& item : ctx.root->named_modules(/*name_prefix=*/"",
                                                  /*include_self=*/false)) {
    const std::string& module_name = item.key();
    bool wanted = false;
    for (const auto& w : module_names)
      wanted = wanted || name_matches(module_name, w);
    if (!wanted)
      continue;
    // The module itself may be a Linear (BERT's classifier) or hold Linear
    // layers only (RoBERTa's classifier.dense / classifier.out_proj): every
    // parameter of the subtree must belong to a Linear, or part of the
    // module would silently not be trained or saved.
    std::vector<std::pair<std::string, std::shared_ptr<models::LinearImpl>>>
        found;
    int64_t linear_params = 0;
    for (const auto& child : item.value()->named_modules(
             /*name_prefix=*/module_name, /*include_self=*/true)) {
      if (auto l =
              std::dynamic_pointer_cast<models::LinearImpl>(child.value())) {
        found.emplace_back(child.key(), l);
        linear_params += static_cast<int64_t>(l->weight.defined()) +
                         static_cast<int64_t>(l->bias.defined());
      }
    }
    // (Copies other adapters attached are not the module's own.)
    int64_t own_params = 0;
    for (const auto& p : item.value()->named_parameters()) {
      own_params += p.key().find(kContainer) == std::string::npos;
    }
    if (found.empty() || own_params != linear_params) {
      throw std::invalid_argument(error_message(
          "modules_to_save", "modules made of Linear layers only (a head)",
          "\"" + module_name + "\"",
          "embeddings and normalisation layers cannot be saved whole yet"));
    }
    for (auto& f : found) {
      if (taken.insert(f.first).second)
        linears.push_back(std::move(f));
    }
  }
  auto adapter = std::make_unique<ModulesToSave>(name);
  for (auto& [linear_name, linear] : linears) {
    auto hook = std::make_shared<HeadCopyHook>(*linear, name);
    linear->attach_hook(adapter->hook_key(), hook);
    adapter->add(Copied{linear_name, linear, hook});
  }
  if (adapter->empty()) {
    if (required) {
      throw std::invalid_argument(error_message(
          "modules_to_save", "names of modules of the model",
          "[" + join_names(module_names) + "], which match nothing",
          "a head is named \"classifier\""));
    }
    return nullptr;
  }
  return adapter;
}

}  // namespace peftcpp::peft
