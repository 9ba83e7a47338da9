#pragma once
// The configuration of one adapter, field for field as Hugging Face PEFT's
// config dataclasses (LoraConfig, IA3Config, PromptTuningConfig,
// PromptEncoderConfig, PrefixTuningConfig) name and default them, so an
// adapter_config.json maps one to one and Python users recognise the knobs.
// Bottleneck adapters follow AdapterHub's BnConfig instead (PEFT has none).
//
// Configs are data: values are validated where they are used (when the
// adapter is added to a model), not here.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace peftcpp::peft {

/// PEFT's peft_type values ("LORA", "IA3", ...), plus AdapterHub's
/// bottleneck adapters.
enum class PeftType {
  kLora,
  kIa3,
  kPromptTuning,
  kPTuning,
  kPrefixTuning,
  kBottleneck,
};

/// "LORA", "IA3", "PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "BOTTLENECK".
std::string to_string(PeftType type);
/// The inverse; throws std::invalid_argument listing the known types.
PeftType parse_peft_type(const std::string& name);
/// Prompt tuning, P-tuning and prefix tuning: methods that add virtual
/// tokens instead of changing layers (PEFT's "prompt learning").
bool is_prompt_learning(PeftType type);

/// PEFT's `target_modules` / `exclude_modules`: None, a string (a regular
/// expression that must match the whole module name) or a list (each entry
/// matches a module named exactly so or ending in "." + entry).
struct ModuleSelector {
  std::optional<std::string> regex;
  std::vector<std::string> names;

  bool empty() const { return !regex && names.empty(); }
  static ModuleSelector list(std::vector<std::string> names) {
    return ModuleSelector{std::nullopt, std::move(names)};
  }
  static ModuleSelector pattern(std::string regex) {
    return ModuleSelector{std::move(regex), {}};
  }
};

/// PEFT's `init_lora_weights`: true (A kaiming-uniform, B zero), "gaussian"
/// (A ~ N(0, 1/r), B zero) or false (both as nn.Linear initialises them:
/// the adapter is not the identity at init, for tests and experiments).
enum class LoraInit { kDefault, kGaussian, kNone };

/// LoRA (Hu et al. 2021), rsLoRA (Kalajdzievski 2023), DoRA (Liu et al.
/// 2024): y = W x + scaling * B A dropout(x).
struct LoraConfig {
  int64_t r = 8;                   ///< rank
  double lora_alpha = 8;           ///< scaling = lora_alpha / r
  double lora_dropout = 0.0;       ///< dropout on the adapter's input
  ModuleSelector target_modules;   ///< empty: the architecture's default
  ModuleSelector exclude_modules;  ///< never targeted
  bool use_rslora = false;         ///< scaling = lora_alpha / sqrt(r)
  bool use_dora = false;  ///< weight-decomposed LoRA (magnitude vector)
  LoraInit init_lora_weights = LoraInit::kDefault;
  /// Which base biases train with the adapter (and are saved with it):
  /// "none", "all" (every bias of the model) or "lora_only" (the biases of
  /// targeted layers).
  std::string bias = "none";
  bool lora_bias = false;  ///< lora_B gets a bias of its own
  /// Per-module rank / alpha overrides; a key matches a module name ending
  /// in it (PEFT: `(.*\.)?key$`), first match wins.
  std::map<std::string, int64_t> rank_pattern;
  std::map<std::string, double> alpha_pattern;
  /// Only these layer indices (empty: all), found with `layers_pattern`
  /// (empty: any "<name>.<index>." in the module name).
  std::vector<int64_t> layers_to_transform;
  std::vector<std::string> layers_pattern;
  /// The base weight is stored [in, out] (GPT-2's Conv1D).
  bool fan_in_fan_out = false;
};

/// (IA)^3 (Liu et al. 2022): learned vectors that rescale a layer's output
/// or, for feed-forward modules, its input.
struct Ia3Config {
  ModuleSelector target_modules;  ///< empty: the architecture's default
  ModuleSelector exclude_modules;
  /// Targets whose input is scaled instead of the output; a subset of the
  /// targets. Unset: the architecture's default (an empty list: none).
  std::optional<ModuleSelector> feedforward_modules;
  bool init_ia3_weights = true;  ///< ones (the identity); false: random
  bool fan_in_fan_out = false;
  std::vector<int64_t> layers_to_transform;
  std::vector<std::string> layers_pattern;
};

/// Fields every prompt-learning method shares. Zeros are filled in from the
/// model when the adapter is added (as PEFT does from model.config).
struct PromptLearningConfig {
  int64_t num_virtual_tokens = 0;
  int64_t token_dim = 0;                   ///< hidden size
  int64_t num_transformer_submodules = 1;  ///< 1 for encoders, decoders
  int64_t num_attention_heads = 0;
  int64_t num_layers = 0;
};

/// How prompt tuning initialises its virtual tokens.
enum class PromptTuningInit {
  kRandom,       ///< N(0, 1), as nn.Embedding
  kText,         ///< the embeddings of a tokenized text, cycled to length
  kSampleVocab,  ///< embeddings of tokens drawn uniformly from the vocabulary
};

/// Prompt tuning (Lester et al. 2021): virtual token embeddings prepended to
/// the input embeddings.
struct PromptTuningConfig : PromptLearningConfig {
  PromptTuningInit prompt_tuning_init = PromptTuningInit::kRandom;
  std::string prompt_tuning_init_text;  ///< for kText
  std::string tokenizer_name_or_path;   ///< for kText: a tokenizer folder
};

/// P-tuning (Liu et al. 2021): prompt tuning whose virtual tokens come out
/// of a small trained encoder (MLP), kept only during training; the saved
/// adapter is the encoder's output table.
struct PromptEncoderConfig : PromptLearningConfig {
  /// "MLP" ("LSTM": saved adapters run, training one is not supported)
  std::string encoder_reparameterization_type = "MLP";
  int64_t encoder_hidden_size = 0;  ///< 0: token_dim
  int64_t encoder_num_layers = 2;
  double encoder_dropout = 0.0;  ///< LSTM only; PEFT's MLP has no dropout
};

/// Prefix tuning (Li & Liang 2021): per-layer key/value prefixes, optionally
/// produced by a two-layer MLP during training (`prefix_projection`).
struct PrefixTuningConfig : PromptLearningConfig {
  int64_t encoder_hidden_size = 0;  ///< the MLP's width; 0: token_dim
  bool prefix_projection = false;
};

/// AdapterHub's bottleneck adapters (Houlsby et al. 2019, Pfeiffer et al.
/// 2020, He et al. 2021): down-projection, non-linearity, up-projection and
/// a residual, in the adapter slots after attention and/or after the
/// feed-forward. Field names and defaults are AdapterHub's (adapters 1.3.0)
/// BnConfig, the defaults those of its seq_bn preset; the forward math of
/// every flag is in docs/bottleneck_reference.md and peft/bottleneck.h.
/// Start from preset() for double_seq_bn or par_bn: the fields, not
/// `architecture`, decide what is built.
struct BottleneckConfig {
  /// The AdapterHub preset these values came from ("seq_bn",
  /// "double_seq_bn", "par_bn", "scaled_par_bn"), "" for any other
  /// combination. A label: it is not saved and changes nothing.
  std::string architecture = "seq_bn";
  bool mh_adapter = false;  ///< an adapter after attention (attention.output)
  bool output_adapter = true;  ///< an adapter after the feed-forward (output)
  /// Bottleneck size = max(1, int(hidden_size // reduction_factor)).
  double reduction_factor = 16;
  /// Per-layer reduction factors (AdapterHub's mapping form {"1": 8,
  /// "default": 16}); unlisted layers use reduction_factor, which may then
  /// be 0 (no default: every layer with an adapter must be listed).
  std::map<int64_t, double> reduction_factor_by_layer;
  /// transformers' activation names ("relu", "swish", "gelu", "gelu_new",
  /// "tanh", ...) and AdapterHub's "leakyrelu".
  std::string non_linearity = "relu";
  bool original_ln_before = true;  ///< adapter input = LN(h + x)
  bool original_ln_after = true;   ///< output = LN(adapter output + x)
  bool residual_before_ln =
      true;  ///< the adapter's residual is h, not LN(h + x)
  /// Add the residual before ln_after's LayerNorm rather than after it.
  bool adapter_residual_before_ln = false;
  bool ln_before = false;  ///< a new LayerNorm on the adapter's input
  bool ln_after = false;   ///< a new LayerNorm on the adapter's output
  /// "bert" (weights N(0, 0.02), biases 0), "mam_adapter" (down
  /// kaiming-uniform, up and biases 0: the base model's output at init) or
  /// "houlsby" (weights truncated N(0, 0.01) in +-0.02, biases 0).
  std::string init_weights = "bert";
  /// Reseeds the global generator before each adapter module is initialised
  /// (every module then starts the same, as in AdapterHub).
  std::optional<int64_t> init_weights_seed;
  /// Parallel (He et al. 2021): the adapter reads the sub-layer's input x
  /// and its output is added to h.
  bool is_parallel = false;
  /// Constant factor on the adapter output, used when scaling_mode is "".
  double scaling = 1.0;
  /// AdapterHub's string values of `scaling`: "learned" (a trained scalar,
  /// initialised to 1) or "channel" (a trained [hidden] vector); "" for the
  /// constant `scaling`.
  std::string scaling_mode;
  /// Multiply the adapter output by mean_T(sigmoid(gate(input))).
  bool use_gating = false;
  double dropout = 0.0;  ///< on the adapter output, in training
  /// Sequential adapters, in training: drop the up-projection's output of
  /// a whole sequence with this probability (torchvision's StochasticDepth,
  /// mode "row"; AdapterPlus).
  double stochastic_depth = 0.0;
  std::vector<int64_t> leave_out;  ///< layer indices without an adapter

  /// AdapterHub's presets: "seq_bn" (alias "pfeiffer"), "double_seq_bn"
  /// ("houlsby"), "par_bn" ("parallel"), "scaled_par_bn"
  /// ("scaled_parallel"). Throws std::invalid_argument listing them for any
  /// other name.
  static BottleneckConfig preset(const std::string& architecture);
};

/// One of the method configs.
using MethodConfig =
    std::variant<LoraConfig, Ia3Config, PromptTuningConfig, PromptEncoderConfig,
                 PrefixTuningConfig, BottleneckConfig>;

/// An adapter's configuration: what every PEFT config has, plus the
/// method's own fields.
struct AdapterConfig {
  MethodConfig method = LoraConfig{};
  /// PEFT's task_type: "SEQ_CLS" adds the classification head to
  /// modules_to_save; "FEATURE_EXTRACTION" for a bare encoder.
  std::string task_type = "SEQ_CLS";
  std::string base_model_name_or_path;
  /// Modules trained fully and saved with the adapter (a new head). For
  /// SEQ_CLS, "classifier" and "score" are added as PEFT does.
  std::optional<std::vector<std::string>> modules_to_save;
  /// Set by load_adapter unless the adapter is loaded for training.
  bool inference_mode = false;

  PeftType peft_type() const;
};

/// Reads an adapter_config.json text as PEFT writes it. Unknown keys are
/// ignored (PEFT itself ignores them since 0.14). Throws std::runtime_error
/// with `where` (the file) for malformed JSON, a wrong field type or an
/// unknown peft_type.
AdapterConfig parse_adapter_config(const std::string& json_text,
                                   const std::string& where);

/// Reads a method configuration written by hand, such as the `method`
/// section of a training config: the fields of parse_adapter_config, but a
/// key the method does not know is an error listing the keys it does (a
/// typo must not train with a default), fields peftcpp does not implement
/// (PEFT's use_qalora, AdapterHub's phm_layer, ...) pass only at their
/// defaults, `peft_type` is case-insensitive with "-" for "_" ("lora",
/// "prefix-tuning"), `task_type` must be one of PEFT's, and BOTTLENECK takes
/// AdapterHub's BnConfig fields on top of the preset named by
/// `architecture` (default "seq_bn"). Throws std::invalid_argument naming
/// `where` and the key; std::runtime_error for text that is not JSON.
AdapterConfig parse_adapter_config_strict(const std::string& json_text,
                                          const std::string& where);

/// The keys parse_adapter_config_strict knows for `type`, sorted: the
/// method's fields and those every config has (peft_type, task_type,
/// modules_to_save, ...).
std::vector<std::string> adapter_config_keys(PeftType type);

/// The adapter_config.json text PEFT would write for `config`: every field
/// of the method's dataclass, sorted keys, 2-space indent.
std::string adapter_config_to_json(const AdapterConfig& config);

}  // namespace peftcpp::peft
