#pragma once
// What every method that works through Linear hooks shares (LoRA, (IA)^3,
// modules_to_save): one hook per targeted layer, attached under
// "<method>:<adapter name>", enabled, merged, unmerged and removed together.
// A method supplies the Hook type; it must provide
//   NamedTensors named_parameters() const  // relative to its layer
//   void set_enabled(bool);  bool merged() const;
//   void check_merge() const;  // throws if a merge would not be finite
//   void merge();  void unmerge();  void remove();

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/layers/linear.h"
#include "peft/adapter.h"

namespace peftcpp::peft {

/// Throws std::runtime_error for a merged weight or bias (undefined: none)
/// that is not finite: what a safe merge refuses.
void require_finite_merge(const at::Tensor& weight, const at::Tensor& bias,
                          const std::string& adapter);

template <class Hook>
class LinearHookAdapter : public Adapter {
 public:
  LinearHookAdapter(std::string name, const std::string& method)
      : Adapter(std::move(name)), hook_key_(method + ":" + this->name()) {}

  /// Attaches `hook` to `layer` (named `layer_name` in the model).
  void attach(std::string layer_name, std::shared_ptr<models::LinearImpl> layer,
              std::shared_ptr<Hook> hook) {
    layer->attach_hook(hook_key_, hook);
    targets_.push_back(
        {std::move(layer_name), std::move(layer), std::move(hook)});
  }
  bool empty() const { return targets_.empty(); }

  NamedTensors named_parameters() const override {
    NamedTensors out;
    for (const auto& t : targets_) {
      for (auto& [key, tensor] : t.hook->named_parameters())
        out.emplace_back(t.layer_name + "." + key, tensor);
    }
    return out;
  }

  void set_enabled(bool enabled) override {
    for (auto& t : targets_)
      t.hook->set_enabled(enabled);
  }

  void remove() override {
    for (auto& t : targets_) {
      t.layer->detach_hook(hook_key_);
      t.hook->remove();
    }
    targets_.clear();
  }

  bool mergeable() const override { return true; }
  bool merged() const override {
    return !targets_.empty() && targets_.front().hook->merged();
  }

  void merge(bool safe) override {
    // Safe: check every layer before changing any.
    if (safe) {
      for (const auto& t : targets_)
        t.hook->check_merge();
    }
    for (auto& t : targets_)
      t.hook->merge();
  }

  void unmerge() override {
    for (auto& t : targets_)
      t.hook->unmerge();
  }

 private:
  struct Target {
    std::string layer_name;
    std::shared_ptr<models::LinearImpl> layer;
    std::shared_ptr<Hook> hook;
  };
  std::string hook_key_;
  std::vector<Target> targets_;
};

}  // namespace peftcpp::peft
