#pragma once
// The model-level half of a PEFT method: one named adapter installed on one
// model (HF PEFT keeps this state spread over its tuner layers; here each
// method gathers what it attached in one object, so the model wrapper can
// activate, disable, merge, save and delete any method the same way).
//
// A method injects itself through the models' hook points (STYLE.md):
// Linear hooks (LoRA, DoRA, (IA)^3, modules_to_save), the sub-layer adapter
// slots (bottleneck adapters) or the inputs (prompt tuning, P-tuning: virtual
// token embeddings; prefix tuning: per-layer key/value prefixes). Parameter
// names are Hugging Face PEFT's in-memory names, adapter name included:
// "bert.encoder.layer.0.attention.self.query.lora_A.default.weight".

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/moduledict.h>
#include <torch/nn/modules/embedding.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "models/encoder/encoder_model.h"
#include "peft/adapter_config.h"

namespace peftcpp::peft {

/// Tensors by name.
using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;
using TensorMap = std::map<std::string, at::Tensor>;

/// What a method needs to know about the model it is added to (PEFT reads
/// the same from model.config).
struct ModelInfo {
  std::string model_type;  ///< "bert", "roberta", ... (default targets)
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t vocab_size = 0;
  /// Decoders with a num_key_value_heads setting (the LLaMA family): the
  /// key/value heads and their size, which shape prefix tuning's prefix
  /// (PEFT's grouped-query rule). 0 for models without the setting.
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  /// Linear layers a Hugging Face checkpoint stores as Conv1D ([in, out]
  /// weights, GPT-2): PEFT records them as fan_in_fan_out in the config.
  std::vector<std::string> conv1d_modules;
};

/// Whether `module` is one of `info`'s Conv1D layers.
bool is_conv1d(const ModelInfo& info, const std::string& module);

/// What a method is given when it is added to a model.
struct AdapterContext {
  /// The model with Hugging Face's module names ("bert.encoder.layer.0...",
  /// "classifier"): where hooks and adapter slots are found.
  torch::nn::Module* root = nullptr;
  ModelInfo info;
  /// modules_to_save of the adapter: never targeted by LoRA or (IA)^3.
  std::vector<std::string> modules_to_save;
  /// The input embedding table (prompt tuning's TEXT / SAMPLE_VOCAB init).
  torch::nn::Embedding word_embeddings{nullptr};
  /// Where prompt methods register their modules, under the adapter name
  /// (PEFT: "prompt_encoder.<name>.embedding.weight").
  torch::nn::ModuleDict prompt_encoders{nullptr};
  /// Loading a saved adapter to run it (PEFT's inference_mode): prompt
  /// methods build the saved table instead of their training encoder.
  bool inference_mode = false;
};

/// One adapter on one model.
class Adapter {
 public:
  explicit Adapter(std::string name) : name_(std::move(name)) {}
  virtual ~Adapter() = default;
  Adapter(const Adapter&) = delete;
  Adapter& operator=(const Adapter&) = delete;

  const std::string& name() const { return name_; }

  /// The adapter's own parameters under their in-memory names (adapter name
  /// included). They train while the adapter is active and are frozen
  /// otherwise.
  virtual NamedTensors named_parameters() const = 0;

  /// Whether the adapter takes part in forward (set_adapter, the disabled
  /// scope). A new adapter starts disabled.
  virtual void set_enabled(bool enabled) = 0;

  /// Detaches everything the adapter attached; the model is as before it
  /// was added (merged weights must be unmerged first).
  virtual void remove() = 0;

  // --- merging (LoRA, DoRA, (IA)^3, modules_to_save) ------------------------
  virtual bool mergeable() const { return false; }
  /// Folds the adapter into the base weights. With `safe`, computes the
  /// merged weights on a copy first and throws std::runtime_error, changing
  /// nothing, if any is not finite.
  virtual void merge(bool safe);
  /// Restores the base weights a merge changed.
  virtual void unmerge();
  virtual bool merged() const { return false; }

  // --- the saved form (HF PEFT's adapter_model.safetensors) -----------------
  /// The tensors as PEFT saves them. `prefix` is what PEFT puts in front of
  /// module paths ("base_model.model." for LoRA-type methods); keys lose the
  /// adapter name: "base_model.model.bert...query.lora_A.weight". The
  /// default maps named_parameters() so; prompt methods override.
  virtual TensorMap state_dict_to_save(const std::string& prefix) const;

  /// Copies the tensors of a saved adapter into this one: every key
  /// state_dict_to_save would write must be in `saved` with the same shape
  /// (else std::runtime_error "[load_adapter] ..." naming the tensor, with a
  /// hint that the adapter may be for another base model). Returns the keys
  /// it used; the caller reports the rest as unexpected.
  virtual std::vector<std::string> load_saved(const TensorMap& saved,
                                              const std::string& prefix,
                                              const std::string& where);

  // --- prompt learning ------------------------------------------------------
  /// Virtual token embeddings to prepend to the input embeddings,
  /// [batch, P, hidden] (prompt tuning, P-tuning); undefined otherwise.
  virtual at::Tensor virtual_token_embeddings(int64_t batch) const {
    return {};
  }
  /// Per-layer key/value prefixes, each [batch, heads, P, head_dim] (prefix
  /// tuning); empty otherwise.
  virtual std::vector<models::KeyValuePrefix> key_value_prefix(
      int64_t batch) const {
    return {};
  }
  /// The number of virtual tokens P (0 for methods without).
  virtual int64_t num_virtual_tokens() const { return 0; }

 protected:
  /// The saved key of an in-memory parameter name: the adapter name removed
  /// ("x.lora_A.default.weight" -> "x.lora_A.weight", "x.ia3_l.default" ->
  /// "x.ia3_l"), `prefix` in front.
  virtual std::string saved_key(const std::string& in_memory_name,
                                const std::string& prefix) const;
  /// The hints load_saved gives for a missing tensor and a wrong shape.
  virtual std::string missing_tensor_hint() const {
    return "the adapter was saved for another model class or with other "
           "target modules";
  }
  virtual std::string wrong_shape_hint() const {
    return "maybe wrong base model? The adapter does not fit this model's "
           "dimensions";
  }

 private:
  std::string name_;
};

}  // namespace peftcpp::peft
