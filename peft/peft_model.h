#pragma once
// A base model with PEFT adapters: HF PEFT's PeftModel / get_peft_model for
// peftcpp's encoders and decoder-only models. One API for every method and
// both families: add or load named adapters, switch the active one, run
// with adapters disabled, merge, save in HF PEFT's format, delete, report
// trainable parameters.
//
//   auto base = models::load_encoder(dir);       // or load_decoder(dir)
//   peft::PeftModel model(std::move(base));
//   peft::AdapterConfig config;
//   config.method = peft::LoraConfig{};          // r=8, PEFT's targets
//   model->add_adapter("default", config);
//   std::cout << model->trainable_parameters_report() << "\n";
//   at::Tensor logits = model->forward(inputs);  // train, then
//   model->save_adapter("out/adapter");          // PeftModel.from_pretrained
//                                                // reads this folder
//
// Decoders take task_type "CAUSAL_LM" (a ...ForCausalLM) or "SEQ_CLS" (a
// ...ForSequenceClassification); generate() runs the active adapter as
// PeftModelForCausalLM.generate does (prompt tuning's virtual tokens in
// front of the prompt, prefix tuning's keys and values as the past).
//
// Only the active adapter takes part in forward and trains; the base model
// and the other adapters are frozen.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/decoder/generation.h"
#include "models/decoder/load_decoder.h"
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
class WrappedModel;

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

/// A model (an encoder with or without a classification head, a causal LM
/// or a decoder classifier) and its adapters.
class PeftModelImpl : public torch::nn::Module {
 public:
  /// Wraps `base`; every base parameter is frozen.
  explicit PeftModelImpl(models::LoadedEncoder base);
  /// Wraps a decoder-only model; every base parameter is frozen.
  explicit PeftModelImpl(models::LoadedDecoder base);
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

  /// Logits [B, num_labels] (an encoder with a classification head).
  at::Tensor forward(const models::EncoderInputs& inputs);
  /// The encoder's outputs with the active adapter (prompt methods: the
  /// virtual tokens are part of last_hidden_state, in front).
  models::EncoderOutput encode(const models::EncoderInputs& inputs);

  /// A decoder's logits with the active adapter: [B, T, vocab] for a causal
  /// LM ([B, P + T, vocab] with prompt tuning / P-tuning, whose P virtual
  /// tokens come first, as in PEFT), [B, num_labels] for a classifier. As
  /// PeftModelForCausalLM: the attention mask gets P ones in front; prompt
  /// methods drop position_ids, prefix tuning moves them on by P. Throws
  /// std::invalid_argument for an encoder and, with a prompt method, for
  /// inputs that bring their own cache.
  at::Tensor forward(const models::DecoderInputs& inputs);

  /// Generates with the active adapter (a causal LM): LoRA and (IA)^3 act
  /// through the layers; prompt tuning puts its virtual tokens in front of
  /// the prompt (GenerationInputs::prompt_embeds), prefix tuning its keys
  /// and values in the cache (GenerationInputs::prefix), as PEFT's
  /// prepare_inputs_for_generation does. `inputs` must not set those two.
  models::GenerationOutput generate(
      const models::GenerationInputs& inputs,
      const models::GenerationOptions& options,
      const std::function<void(int64_t)>& on_step = {});

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
  /// merge_and_unload for a decoder-only model.
  models::LoadedDecoder merge_and_unload_decoder(bool safe = false);

  ParameterCount count_parameters() const;
  /// "trainable params: 1,234 || all params: 5,678 || trainable%: 21.7330"
  std::string trainable_parameters_report() const;

  /// The wrapped encoder (std::invalid_argument for a decoder).
  models::LoadedEncoder& base();
  const models::LoadedEncoder& base() const;
  /// The wrapped decoder-only model (std::invalid_argument for an
  /// encoder).
  models::LoadedDecoder& decoder();
  const models::LoadedDecoder& decoder() const;
  /// Whether the wrapped model is a decoder-only model.
  bool is_decoder() const;
  /// What the methods are told about the model.
  const ModelInfo& model_info() const { return info_; }

 private:
  friend class AdaptersDisabled;
  struct Entry;

  explicit PeftModelImpl(std::unique_ptr<WrappedModel> base);
  models::LoadedEncoder& encoder_for(const std::string& where) const;
  models::LoadedDecoder& decoder_for(const std::string& where) const;
  /// The active adapter when it adds virtual tokens (prompt methods) and
  /// adapters are not disabled; nullptr otherwise.
  const Adapter* active_prompt_method() const;
  /// Removes every adapter after merging the active one (merge_and_unload).
  void merge_and_remove_all(bool safe);

  Entry& entry(const std::string& name, const std::string& where);
  const Entry& entry(const std::string& name, const std::string& where) const;
  void update_trainable();
  void set_all_enabled(bool enabled);
  models::EncoderInputs with_prompt(const models::EncoderInputs& inputs);

  std::unique_ptr<WrappedModel> base_;
  ModelInfo info_;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::string active_;
  int disabled_ = 0;  ///< depth of AdaptersDisabled scopes
  torch::nn::ModuleDict prompt_encoder_{nullptr};
};
TORCH_MODULE(PeftModel);

}  // namespace peftcpp::peft
