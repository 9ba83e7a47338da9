// PeftModel's adapter folders: save_adapter writes what HF PEFT's
// save_pretrained writes (adapter_config.json + adapter_model.safetensors) or
// AdapterHub's folder for bottleneck adapters; load_adapter reads either and
// leaves the model unchanged when it refuses one.

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <set>
#include <stdexcept>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/text_file.h"
#include "models/checkpoint/safetensors.h"
#include "models/checkpoint/state_dict.h"
#include "peft/adapterhub_folder.h"
#include "peft/peft_model.h"
#include "peft/peft_model_entry.h"
#include "peft/wrapped_model.h"

namespace peftcpp::peft {

namespace fs = std::filesystem;

namespace {

constexpr const char* kConfigFile = "adapter_config.json";
constexpr const char* kWeightsFile = "adapter_model.safetensors";
constexpr const char* kWeightsBinFile = "adapter_model.bin";

// PEFT wraps the model as base_model.model for LoRA-type methods and keeps
// it as base_model for prompt learning; saved module keys carry that path.
std::string saved_prefix(PeftType type) {
  return is_prompt_learning(type) ? "base_model." : "base_model.model.";
}

}  // namespace

// --- adapter folders
// ------------------------------------------------------------

void PeftModelImpl::save_adapter(const fs::path& dir,
                                 const std::string& name) const {
  const Entry& e = entry(name.empty() ? active_ : name, "save_adapter");
  fs::create_directories(dir);
  if (e.config.peft_type() == PeftType::kBottleneck) {
    const TensorMap head =
        e.head ? e.head->state_dict_to_save("") : TensorMap{};
    // AdapterHub records the model class (its head loads only into that
    // class) and the head's labels.
    const std::vector<std::string>& architectures =
        is_decoder() ? decoder_for("save_adapter").config.architectures
                     : encoder_for("save_adapter").config.architectures;
    const std::vector<std::string>& id2label =
        is_decoder() ? decoder_for("save_adapter").config.id2label
                     : encoder_for("save_adapter").config.id2label;
    const std::string model_class =
        architectures.empty() ? std::string() : architectures.front();
    save_adapterhub_folder(
        dir, e.name, std::get<BottleneckConfig>(e.config.method), info_,
        model_class, e.method->state_dict_to_save(""), head, id2label);
    return;
  }
  const std::string prefix = saved_prefix(e.config.peft_type());
  TensorMap tensors = e.method->state_dict_to_save(prefix);
  if (e.head) {
    for (auto& [key, t] : e.head->state_dict_to_save(prefix))
      tensors[key] = t;
  }
  std::vector<std::pair<std::string, at::Tensor>> ordered;
  for (auto& [key, t] : tensors)
    ordered.emplace_back(key, t.detach().to(at::kCPU).contiguous());
  models::save_safetensors(dir / kWeightsFile, ordered, {{"format", "pt"}});
  // PEFT writes the config of a saved adapter with inference_mode true.
  AdapterConfig saved = e.config;
  saved.inference_mode = true;
  const std::string json = adapter_config_to_json(saved);
  write_file_atomically(dir / kConfigFile,
                        [&](std::ostream& out) { out << json; });
}

void PeftModelImpl::load_adapter(const fs::path& dir, const std::string& name,
                                 const LoadAdapterOptions& options) {
  // (The name itself is checked by add_adapter below.)
  if (has_adapter(name)) {
    throw std::invalid_argument(error_message(
        "load_adapter", "a new adapter name", "\"" + name + "\" (in use)"));
  }
  AdapterConfig config;
  TensorMap weights;
  TensorMap head_weights;
  bool adapterhub = false;
  std::string where;
  if (is_adapterhub_folder(dir)) {
    adapterhub = true;
    AdapterHubFolder folder = read_adapterhub_folder(dir);
    config.method = folder.config;
    config.task_type = base_->has_classifier() && !folder.head_weights.empty()
                           ? "SEQ_CLS"
                           : "FEATURE_EXTRACTION";
    weights = std::move(folder.adapter_weights);
    head_weights = std::move(folder.head_weights);
    where = dir.string();
  } else {
    const fs::path config_path = dir / kConfigFile;
    config = parse_adapter_config(
        read_text_file(config_path, "load_adapter",
                       "an adapter folder holds adapter_config.json and "
                       "adapter_model.safetensors"),
        config_path.string());
    fs::path weights_path = dir / kWeightsFile;
    if (!fs::exists(weights_path) && fs::exists(dir / kWeightsBinFile))
      weights_path = dir / kWeightsBinFile;
    if (!fs::exists(weights_path)) {
      throw std::runtime_error(error_message(
          "load_adapter", "the adapter weights " + weights_path.string(),
          "no such file"));
    }
    weights = models::load_checkpoint(weights_path);
    where = weights_path.string();
  }
  config.inference_mode = !options.is_trainable;
  // A saved prompt is a table: always rebuild it as one, even to train on.
  AdapterConfig to_add = config;
  to_add.inference_mode =
      to_add.inference_mode || is_prompt_learning(config.peft_type());
  // Base tensors the adapter trains (LoRA's bias policies) get overwritten
  // by load_saved: keep their values to put back if the load is refused.
  std::set<const void*> base_tensors;
  for (const auto& p : base_->module()->parameters())
    base_tensors.insert(p.unsafeGetTensorImpl());
  const std::string previous_active = active_;
  add_adapter(name, to_add);
  Entry& e = entry(name, "load_adapter");
  e.config.inference_mode = config.inference_mode;
  std::vector<std::pair<at::Tensor, at::Tensor>> saved_base;
  for (const auto& [key, t] : e.method->named_parameters()) {
    if (base_tensors.count(t.unsafeGetTensorImpl()))
      saved_base.emplace_back(t, t.detach().clone());
  }
  try {
    std::set<std::string> used;
    const std::string prefix =
        adapterhub ? "" : saved_prefix(config.peft_type());
    for (const auto& key : e.method->load_saved(weights, prefix, where))
      used.insert(key);
    if (e.head) {
      const TensorMap& source = adapterhub ? head_weights : weights;
      for (const auto& key : e.head->load_saved(source, prefix, where))
        used.insert(key);
    }
    std::vector<std::string> unexpected;
    for (const auto& [key, t] : weights) {
      // PEFT's bias="all" also saves the head wrapper's own biases
      // ("classifier.original_module.bias", "classifier.modules_to_save
      // .bias"): artefacts of its wrapper, not weights of the adapter.
      const bool wrapper_artefact =
          key.find(".original_module.") != std::string::npos ||
          key.find(".modules_to_save.") != std::string::npos;
      if (!used.count(key) && !wrapper_artefact)
        unexpected.push_back(key);
    }
    if (!unexpected.empty()) {
      throw std::runtime_error(error_message(
          "load_adapter", "only tensors this model's adapter uses in " + where,
          "[" + join_names(unexpected, ", ", 6) + "]",
          "the adapter was made for another model class or target modules"));
    }
  } catch (...) {
    // Leave the model as it was: base values back, the new adapter gone,
    // the active adapter (and its merge state) untouched.
    {
      at::NoGradGuard no_grad;
      for (auto& [param, value] : saved_base)
        param.copy_(value);
    }
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if ((*it)->name == name) {
        for (Adapter* part : (*it)->parts())
          part->remove();
        entries_.erase(it);
        break;
      }
    }
    active_ = previous_active;
    update_trainable();
    throw;
  }
  if (options.activate)
    set_adapter(name);
  else
    update_trainable();
}

}  // namespace peftcpp::peft
