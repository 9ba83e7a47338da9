#include "peft/modules_to_save.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/nn/modules/linear.h>

#include <set>
#include <stdexcept>

#include "common/error.h"
#include "models/layers/linear.h"
#include "peft/hook_containers.h"
#include "peft/linear_hook_adapter.h"

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
  void check_merge() const {}  // copying trained weights cannot overflow
  NamedTensors named_parameters() const {
    const std::string head = std::string(kContainer) + "." + name_ + ".";
    NamedTensors out{{head + "weight", copy_->weight}};
    if (copy_->bias.defined())
      out.emplace_back(head + "bias", copy_->bias);
    return out;
  }

 private:
  models::LinearImpl& layer_;
  std::string name_;
  torch::nn::Linear copy_{nullptr};
  at::Tensor original_weight_, original_bias_;
  bool enabled_ = false;
  bool merged_ = false;
};

// The copies of one adapter, saved under the original module's keys.
class ModulesToSave final : public LinearHookAdapter<HeadCopyHook> {
 public:
  explicit ModulesToSave(std::string name)
      : LinearHookAdapter(std::move(name), kContainer) {}

 protected:
  // "classifier.modules_to_save.default.weight" -> "classifier.weight".
  std::string saved_key(const std::string& key,
                        const std::string& prefix) const override {
    const std::string segment =
        "." + std::string(kContainer) + "." + name() + ".";
    std::string out = key;
    if (const auto pos = out.find(segment); pos != std::string::npos)
      out.replace(pos, segment.size(), ".");
    return prefix + out;
  }
  std::string missing_tensor_hint() const override {
    return "the adapter was saved without this head";
  }
  std::string wrong_shape_hint() const override {
    return "maybe wrong base model? A head for another number of labels "
           "does not fit either";
  }
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
    adapter->attach(linear_name, linear,
                    std::make_shared<HeadCopyHook>(*linear, name));
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
