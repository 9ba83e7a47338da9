#pragma once
// config.json of a decoder-only model: GPT-2 (`gpt2`) and the LLaMA family
// (`llama`, `qwen2`, `mistral`; SmolLM checkpoints are `llama`), with
// transformers' field names and defaults. GPT-2's own names (n_embd, n_layer,
// ...) are read into the same fields, so model code sees one vocabulary.

#include <nlohmann/json_fwd.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "models/encoder/encoder_config.h"  // ProblemType
#include "models/layers/activation.h"

namespace peftcpp::models {

/// The block designs we implement.
enum class DecoderFamily {
  kGpt2,   ///< LayerNorm, learned positions, fused Conv1D c_attn, gelu MLP
  kLlama,  ///< RMSNorm, RoPE, q/k/v/o projections, SwiGLU, grouped KV heads
};

/// Rotary position embedding parameters (transformers' rope_parameters, or
/// the older rope_theta + rope_scaling pair).
struct RopeParameters {
  /// "default" or "llama3"; "linear" too (positions divided by factor).
  std::string rope_type = "default";
  double rope_theta = 10000.0;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 0;
};

/// config.json of a decoder-only model.
struct DecoderConfig {
  DecoderFamily family = DecoderFamily::kLlama;
  std::string model_type = "llama";  ///< as written in config.json
  std::vector<std::string> architectures;

  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;  ///< GPT-2: n_inner or 4 * n_embd
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;  ///< GPT-2: num_attention_heads
  int64_t head_dim = 128;            ///< hidden_size / heads unless given
  int64_t max_position_embeddings = 2048;
  Activation hidden_act = Activation::kSilu;
  /// RMSNorm eps (LLaMA) or LayerNorm eps (GPT-2).
  double norm_eps = 1e-6;
  RopeParameters rope;
  bool attention_bias = false;  ///< q/k/v (and o for LLaMA) biases
  bool mlp_bias = false;
  /// Qwen2 puts biases on q, k and v only (no attention_bias key).
  bool qkv_bias = false;
  /// Keys further back than this are not attended (Mistral); unset: all.
  std::optional<int64_t> sliding_window;
  bool tie_word_embeddings = false;
  double attention_dropout = 0.0;
  double residual_dropout = 0.0;   ///< GPT-2 resid_pdrop
  double embedding_dropout = 0.0;  ///< GPT-2 embd_pdrop
  double initializer_range = 0.02;
  /// GPT-2: scale attention by 1/sqrt(head_dim) (scale_attn_weights) and
  /// additionally by 1/(layer_idx + 1).
  bool scale_attn_weights = true;
  bool scale_attn_by_inverse_layer_idx = false;

  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  ///< eos_token_id (int or list)
  std::optional<int64_t> pad_token_id;

  /// Labels of a sequence classification head: id2label in id order.
  std::vector<std::string> id2label;
  ProblemType problem_type = ProblemType::kUnset;
  /// The dtype the checkpoint was saved in ("float32", "bfloat16", ...).
  std::string torch_dtype = "float32";

  int64_t num_labels() const { return static_cast<int64_t>(id2label.size()); }

  /// "transformer" (GPT-2) or "model": the name HF gives the backbone
  /// inside a model with a head.
  std::string base_model_prefix() const;
  /// True when config.architectures names a ...ForSequenceClassification.
  bool has_sequence_classification_head() const;

  /// Parses config.json content; `source` names it in error messages.
  /// Throws std::runtime_error for an unsupported model_type (listing the
  /// supported ones), a rope type we do not implement, inconsistent head
  /// counts, or fields of the wrong JSON type.
  static DecoderConfig from_json(const nlohmann::json& j,
                                 const std::string& source);
  /// Reads and parses `path` (a config.json, or a folder holding one).
  static DecoderConfig from_file(const std::filesystem::path& path);

  /// Whether `model_type` is one of the decoders we implement.
  static bool is_decoder_model_type(const std::string& model_type);
  /// The supported model types, for messages: "gpt2, llama, mistral, qwen2".
  static std::string supported_model_types();
};

}  // namespace peftcpp::models
