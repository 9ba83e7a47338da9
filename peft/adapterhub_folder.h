#pragma once
// AdapterHub's adapter folders (`adapters` 1.3.0, model.save_adapter(dir,
// name)), read and written byte for byte as that library does:
//
//   adapter_config.json     {"config": {BnConfig, every field}, "hidden_size",
//                            "model_class", "model_name", "model_type",
//                            "name", "version": "adapters.1.3.0"}
//   adapter.safetensors     the adapter's tensors under their in-model names
//   (or pytorch_adapter.bin) ("bert.encoder.layer.0.output.adapters.<name>.
//                            adapter_up.weight")
//   head_config.json        on models with a static head: {"config": null,
//                            "label2id", "num_labels", ...}
//   model_head.safetensors  the head under transformers' names
//   (or pytorch_model_head.bin) ("classifier.weight")
//
// JSON is written as Python's json.dump(indent=2, sort_keys=True): ASCII
// only, no final newline.

#include <filesystem>
#include <string>
#include <vector>

#include "peft/adapter.h"
#include "peft/adapter_config.h"

namespace peftcpp::peft {

/// The library version written into "version" ("adapters." + this).
inline constexpr const char* kAdapterHubVersion = "1.3.0";

/// What read_adapterhub_folder found.
struct AdapterHubFolder {
  std::string name;  ///< the adapter's saved name ("name")
  BottleneckConfig config;
  TensorMap adapter_weights;  ///< keys as saved, adapter name included
  TensorMap head_weights;     ///< empty without head files
  /// adapter_config.json's "model_class" ("BertForSequenceClassification";
  /// AdapterHub loads the head only into that class).
  std::string model_class;
  /// head_config.json's label2id in id order (empty without it).
  std::vector<std::string> id2label;
};

/// Whether `dir` holds an AdapterHub adapter: adapter_config.json with a
/// "config" and a "version" starting "adapters.". False for anything else
/// (HF PEFT folders, unreadable or malformed files).
bool is_adapterhub_folder(const std::filesystem::path& dir);

/// Reads adapter_config.json and adapter.safetensors (else
/// pytorch_adapter.bin), and head_config.json + model_head.safetensors (else
/// pytorch_model_head.bin) when present. Throws std::runtime_error naming
/// the file for a missing or malformed file, a config that is not a
/// bottleneck adapter (LoRA, prefix tuning, a ConfigUnion, ...) or a field
/// of the wrong type; std::invalid_argument naming the file and the field
/// for options peftcpp does not implement (phm_layer, inv_adapter,
/// stochastic_depth, residual_before_ln "post_add").
AdapterHubFolder read_adapterhub_folder(const std::filesystem::path& dir);

/// Writes an AdapterHub folder as `adapters` does with
/// save_adapter(dir, name, use_safetensors=True): adapter_config.json and
/// adapter.safetensors, plus head_config.json and model_head.safetensors
/// when `head_weights` is not empty. `model_class` is the transformers
/// class ("BertForSequenceClassification"; AdapterHub loads a head only into
/// the same class), `id2label` the head's labels (empty: "LABEL_<i>" for
/// the rows of the head's last weight). Every file is written atomically;
/// `dir` is created if needed.
void save_adapterhub_folder(const std::filesystem::path& dir,
                            const std::string& name,
                            const BottleneckConfig& config,
                            const ModelInfo& info,
                            const std::string& model_class,
                            const TensorMap& adapter_weights,
                            const TensorMap& head_weights,
                            const std::vector<std::string>& id2label = {});

/// The "config" object of adapter_config.json for `config` (every BnConfig
/// field, unimplemented ones at their defaults), as indented JSON text.
std::string bottleneck_config_to_json(const BottleneckConfig& config);

/// A BnConfig given as a JSON object text (absent fields take BnConfig's
/// defaults: original_ln_before false) or as a JSON string naming a preset.
/// `where` names the source in errors (see read_adapterhub_folder).
BottleneckConfig parse_bottleneck_config(const std::string& json_text,
                                         const std::string& where);

}  // namespace peftcpp::peft
