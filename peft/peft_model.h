#pragma once
// A base model with PEFT adapters: HF PEFT's PeftModel / get_peft_model for
// peftcpp's encoders. One API for every method: add or load named adapters,
// switch the active one, run with adapters disabled, merge, save in HF
// PEFT's format, delete, report trainable parameters.
//
//   auto base = models::load_encoder(dir);
//   peft::PeftModel model(std::move(base));
//   peft::AdapterConfig config;
//   config.method = peft::LoraConfig{};          // r=8, query/value
//   model->add_adapter("default", config);
//   std::cout << model->trainable_parameters_report() << "\n";
//   at::Tensor logits = model->forward(inputs);  // train, then
//   model->save_adapter("out/adapter");          // PeftModel.from_pretrained
//                                                // reads this folder
//
// Only the active adapter takes part in forward and trains; the base model
// and the other adapters are frozen.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "models/encoder/load_encoder.h"
#include "peft/adapter.h"
#include "peft/adapter_config.h"

namespace peftcpp::peft {

/// Parameter counts as PEFT's print_trainable_parameters reports them.
struct ParameterCount {
  int64_t trainable = 0;
  int64_t total = 0;  ///< base + every adapter
};

/// How load_adapter treats the adapter.
struct LoadAdapterOptions {
  /// Train it further (parameters trainable, inference_mode false) rather
  /// than only run it.
  bool is_trainable = false;
  /// Make it the active adapter.
  bool activate = true;
};

class PeftModelImpl;

/// While alive, the model runs without any adapter (a merged adapter is
/// unmerged for the duration and merged again after, if it is still the
/// active one). Scopes nest; merge_adapter is refused inside one.
class AdaptersDisabled {
 public:
  explicit AdaptersDisabled(PeftModelImpl& model);
  ~AdaptersDisabled();
  AdaptersDisabled(const AdaptersDisabled&) = delete;
  AdaptersDisabled& operator=(const AdaptersDisabled&) = delete;

 private:
  PeftModelImpl& model_;
  std::string merged_adapter_;  ///< the adapter to merge again, or ""
};

/// An encoder (with or without a classification head) and its adapters.
class PeftModelImpl : public torch::nn::Module {
 public:
  /// Wraps `base`; every base parameter is frozen.
  explicit PeftModelImpl(models::LoadedEncoder base);
  ~PeftModelImpl() override;

  /// Adds the adapter `name` (validated against the model, see each
  /// method), and makes it active if it is the first. Throws
  /// std::invalid_argument for a name in use or not a valid module name,
  /// and for options the model cannot take (no target matches: the message
  /// lists the model's layers).
  void add_adapter(const std::string& name, const AdapterConfig& config);

  /// Reads an adapter folder (adapter_config.json + adapter_model
  /// .safetensors, as HF PEFT writes; or AdapterHub's folder for
  /// bottleneck adapters) as `name`. Throws std::runtime_error naming the
  /// file and tensor for a malformed or missing file, an unknown peft_type,
  /// a missing tensor or one of the wrong shape (an adapter for another
  /// base model); the model is unchanged then.
  void load_adapter(const std::filesystem::path& dir, const std::string& name,
                    const LoadAdapterOptions& options = {});

  /// Writes adapter `name` (default: the active one) into `dir` exactly as
  /// PEFT's save_pretrained would for the same model class. Atomic per file.
  void save_adapter(const std::filesystem::path& dir,
                    const std::string& name = "") const;

  /// Makes `name` the active adapter (its parameters trainable, the others
  /// frozen). Throws std::out_of_range listing the adapters.
  void set_adapter(const std::string& name);
  /// The active adapter's name ("" when there is none).
  const std::string& active_adapter() const { return active_; }
  /// Adapter names in the order they were added.
  std::vector<std::string> adapter_names() const;
  bool has_adapter(const std::string& name) const;
  const AdapterConfig& adapter_config(const std::string& name) const;

  /// Removes adapter `name`. Deleting the active adapter is refused
  /// (std::invalid_argument; set another adapter active first), as is an
  /// unknown name (std::out_of_range).
  void delete_adapter(const std::string& name);

  /// A scope in which the model computes the base model's output.
  [[nodiscard]] AdaptersDisabled disable_adapters() {
    return AdaptersDisabled(*this);
  }

  /// Logits [B, num_labels] (the model must have a classification head).
  at::Tensor forward(const models::EncoderInputs& inputs);
  /// The encoder's outputs with the active adapter (prompt methods: the
  /// virtual tokens are part of last_hidden_state, in front).
  models::EncoderOutput encode(const models::EncoderInputs& inputs);

  /// Folds the active adapter into the base weights (LoRA, DoRA, (IA)^3).
  /// Throws std::invalid_argument for a method that cannot merge and inside
  /// a disable_adapters() scope.
  void merge_adapter(bool safe = false);
  /// Restores the base weights.
  void unmerge_adapter();
  bool merged() const;
  /// Merges the active adapter and returns the plain model (heads from
  /// modules_to_save in place), every adapter removed: what `peftcpp merge`
  /// saves. The PeftModel is empty afterwards; parameters stay frozen, as
  /// in PEFT.
  models::LoadedEncoder merge_and_unload(bool safe = false);

  ParameterCount count_parameters() const;
  /// "trainable params: 1,234 || all params: 5,678 || trainable%: 21.7330"
  std::string trainable_parameters_report() const;

  /// The wrapped model.
  models::LoadedEncoder& base() { return base_; }
  const models::LoadedEncoder& base() const { return base_; }
  /// What the methods are told about the model.
  const ModelInfo& model_info() const { return info_; }

 private:
  friend class AdaptersDisabled;
  struct Entry;

  Entry& entry(const std::string& name, const std::string& where);
  const Entry& entry(const std::string& name, const std::string& where) const;
  void update_trainable();
  void set_all_enabled(bool enabled);
  models::EncoderInputs with_prompt(const models::EncoderInputs& inputs);

  models::LoadedEncoder base_;
  ModelInfo info_;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::string active_;
  int disabled_ = 0;  ///< depth of AdaptersDisabled scopes
  torch::nn::ModuleDict prompt_encoder_{nullptr};
};
TORCH_MODULE(PeftModel);

}  // namespace peftcpp::peft
