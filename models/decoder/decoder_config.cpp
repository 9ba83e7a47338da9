#include "models/decoder/decoder_config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <stdexcept>

#include "common/error.h"
#include "models/config_fields.h"

namespace peftcpp::models {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// transformers 5 writes rope_parameters {rope_type, rope_theta, factor,
// ...}; older configs have rope_theta plus rope_scaling {type|rope_type,
// factor, ...}. Both land in one struct.
RopeParameters read_rope(const json& j, const std::string& source) {
  RopeParameters rope;
  read_config_field(j, "rope_theta", rope.rope_theta, source);
  const json* params = nullptr;
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    const auto it = j.find(key);
    if (it != j.end() && it->is_object()) {
      params = &*it;
      break;
    }
  }
  if (params == nullptr)
    return rope;
  read_config_field(*params, "rope_theta", rope.rope_theta, source);
  read_config_field(*params, "type", rope.rope_type, source);
  read_config_field(*params, "rope_type", rope.rope_type, source);
  read_config_field(*params, "factor", rope.factor, source);
  read_config_field(*params, "low_freq_factor", rope.low_freq_factor, source);
  read_config_field(*params, "high_freq_factor", rope.high_freq_factor, source);
  read_config_field(*params, "original_max_position_embeddings",
                    rope.original_max_position_embeddings, source);
  if (rope.rope_type != "default" && rope.rope_type != "llama3" &&
      rope.rope_type != "linear") {
    throw std::runtime_error(error_message(
        source, "a rope_type of default, linear or llama3",
        "\"" + rope.rope_type + "\"",
        "other RoPE scalings (yarn, dynamic, longrope) are not implemented"));
  }
  return rope;
}

void read_labels(const json& j, DecoderConfig& c, const std::string& source) {
  const auto it = j.find("id2label");
  if (it == j.end() || !it->is_object())
    return;
  std::vector<std::pair<int64_t, std::string>> labels;
  for (const auto& [key, value] : it->items()) {
    try {
      labels.emplace_back(std::stoll(key), value.get<std::string>());
    } catch (const std::exception&) {
      throw std::runtime_error(
          error_message(source, "id2label with integer keys and string labels",
                        "\"" + key + "\": " + value.dump()));
    }
  }
  std::sort(labels.begin(), labels.end());
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i].first != static_cast<int64_t>(i)) {
      throw std::runtime_error(error_message(
          source, "id2label keys 0.." + std::to_string(labels.size() - 1),
          "key " + std::to_string(labels[i].first)));
    }
    c.id2label.push_back(labels[i].second);
  }
}

void read_gpt2(const json& j, DecoderConfig& c, const std::string& source) {
  c.family = DecoderFamily::kGpt2;
  // GPT-2's defaults (GPT2Config), then its own key names.
  c.vocab_size = 50257;
  c.hidden_size = 768;
  c.num_hidden_layers = 12;
  c.num_attention_heads = 12;
  c.max_position_embeddings = 1024;
  c.norm_eps = 1e-5;
  c.hidden_act = Activation::kGeluNew;
  c.tie_word_embeddings = true;
  c.attention_bias = true;
  c.mlp_bias = true;
  c.residual_dropout = c.embedding_dropout = c.attention_dropout = 0.1;
  c.bos_token_id = 50256;
  c.eos_token_ids = {50256};
  read_config_field(j, "vocab_size", c.vocab_size, source);
  read_config_field(j, "n_embd", c.hidden_size, source);
  read_config_field(j, "n_layer", c.num_hidden_layers, source);
  read_config_field(j, "n_head", c.num_attention_heads, source);
  read_config_field(j, "n_positions", c.max_position_embeddings, source);
  read_config_field(j, "layer_norm_epsilon", c.norm_eps, source);
  read_config_field(j, "resid_pdrop", c.residual_dropout, source);
  read_config_field(j, "embd_pdrop", c.embedding_dropout, source);
  read_config_field(j, "attn_pdrop", c.attention_dropout, source);
  read_config_field(j, "scale_attn_weights", c.scale_attn_weights, source);
  read_config_field(j, "scale_attn_by_inverse_layer_idx",
                    c.scale_attn_by_inverse_layer_idx, source);
  std::string act = "gelu_new";
  read_config_field(j, "activation_function", act, source);
  c.hidden_act = parse_activation(act);
  c.intermediate_size = 4 * c.hidden_size;
  read_config_field(j, "n_inner", c.intermediate_size, source);
  c.num_key_value_heads = c.num_attention_heads;
  bool reorder = false;
  read_config_field(j, "reorder_and_upcast_attn", reorder, source);
  bool cross = false;
  read_config_field(j, "add_cross_attention", cross, source);
  if (reorder || cross) {
    throw std::runtime_error(error_message(
        source,
        "a GPT-2 config without reorder_and_upcast_attn and "
        "add_cross_attention",
        reorder ? "reorder_and_upcast_attn: true" : "add_cross_attention: true",
        "these GPT-2 variants are not implemented"));
  }
}

void read_llama(const json& j, DecoderConfig& c, const std::string& source) {
  c.family = DecoderFamily::kLlama;
  if (c.model_type == "qwen2") {
    c.vocab_size = 151936;
    c.max_position_embeddings = 32768;
    c.qkv_bias = true;
  } else if (c.model_type == "mistral") {
    c.max_position_embeddings = 4096 * 32;
    c.norm_eps = 1e-6;
    c.sliding_window = 4096;
    c.intermediate_size = 14336;
    c.num_key_value_heads = 8;
  }
  read_config_field(j, "vocab_size", c.vocab_size, source);
  read_config_field(j, "hidden_size", c.hidden_size, source);
  read_config_field(j, "intermediate_size", c.intermediate_size, source);
  read_config_field(j, "num_hidden_layers", c.num_hidden_layers, source);
  read_config_field(j, "num_attention_heads", c.num_attention_heads, source);
  c.num_key_value_heads =
      c.model_type == "mistral" ? c.num_key_value_heads : c.num_attention_heads;
  read_config_field(j, "num_key_value_heads", c.num_key_value_heads, source);
  read_config_field(j, "max_position_embeddings", c.max_position_embeddings,
                    source);
  read_config_field(j, "rms_norm_eps", c.norm_eps, source);
  read_config_field(j, "attention_bias", c.attention_bias, source);
  read_config_field(j, "mlp_bias", c.mlp_bias, source);
  read_config_field(j, "attention_dropout", c.attention_dropout, source);
  read_config_field(j, "tie_word_embeddings", c.tie_word_embeddings, source);
  std::string act = "silu";
  read_config_field(j, "hidden_act", act, source);
  c.hidden_act = parse_activation(act);
  c.rope = read_rope(j, source);
  if (c.model_type == "mistral") {
    const auto it = j.find("sliding_window");
    if (it != j.end())
      c.sliding_window = it->is_null()
                             ? std::nullopt
                             : std::optional<int64_t>(it->get<int64_t>());
  } else if (c.model_type == "qwen2") {
    bool use_sliding = false;
    read_config_field(j, "use_sliding_window", use_sliding, source);
    if (use_sliding) {
      throw std::runtime_error(
          error_message(source, "use_sliding_window false", "true",
                        "Qwen2's per-layer sliding window is not implemented"));
    }
  }
  int64_t pretraining_tp = 1;
  read_config_field(j, "pretraining_tp", pretraining_tp, source);
  (void)pretraining_tp;  // a training-time sharding detail; outputs equal
}

}  // namespace

bool DecoderConfig::is_decoder_model_type(const std::string& model_type) {
  return model_type == "gpt2" || model_type == "llama" ||
         model_type == "qwen2" || model_type == "mistral";
}

std::string DecoderConfig::supported_model_types() {
  return "gpt2, llama, mistral, qwen2";
}

std::string DecoderConfig::base_model_prefix() const {
  return family == DecoderFamily::kGpt2 ? "transformer" : "model";
}

bool DecoderConfig::has_sequence_classification_head() const {
  const std::string suffix = "ForSequenceClassification";
  return std::any_of(
      architectures.begin(), architectures.end(), [&](const std::string& a) {
        return a.size() >= suffix.size() &&
               a.compare(a.size() - suffix.size(), suffix.size(), suffix) == 0;
      });
}

DecoderConfig DecoderConfig::from_json(const json& j,
                                       const std::string& source) {
  if (!j.is_object())
    throw std::runtime_error(error_message(source, "a JSON object", j.dump()));
  DecoderConfig c;
  read_config_field(j, "model_type", c.model_type, source);
  if (!is_decoder_model_type(c.model_type)) {
    throw std::runtime_error(error_message(
        source, "a decoder model_type (" + supported_model_types() + ")",
        "\"" + c.model_type + "\"",
        "this architecture is not implemented; BERT-style encoders load "
        "through load_encoder"));
  }
  read_config_field(j, "architectures", c.architectures, source);
  if (c.model_type == "gpt2")
    read_gpt2(j, c, source);
  else
    read_llama(j, c, source);
  read_config_field(j, "initializer_range", c.initializer_range, source);

  c.head_dim =
      c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0;
  if (c.family == DecoderFamily::kLlama)
    read_config_field(j, "head_dim", c.head_dim, source);
  check_positive_field(c.vocab_size, "vocab_size", source);
  check_positive_field(c.hidden_size, "hidden_size", source);
  check_positive_field(c.num_hidden_layers, "num_hidden_layers", source);
  check_positive_field(c.num_attention_heads, "num_attention_heads", source);
  check_positive_field(c.num_key_value_heads, "num_key_value_heads", source);
  check_positive_field(c.head_dim, "head_dim", source);
  check_positive_field(c.intermediate_size, "intermediate_size", source);
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    throw std::runtime_error(error_message(
        source, "num_attention_heads divisible by num_key_value_heads",
        std::to_string(c.num_attention_heads) + " and " +
            std::to_string(c.num_key_value_heads)));
  }
  if (c.family == DecoderFamily::kGpt2 &&
      c.hidden_size % c.num_attention_heads != 0) {
    throw std::runtime_error(
        error_message(source, "n_embd divisible by n_head",
                      std::to_string(c.hidden_size) + " and " +
                          std::to_string(c.num_attention_heads)));
  }

  const auto read_id = [&](const char* key, std::optional<int64_t>& out) {
    const auto it = j.find(key);
    if (it == j.end())
      return;
    if (it->is_null())
      out.reset();
    else if (it->is_number_integer())
      out = it->get<int64_t>();
    else if (it->is_array() && !it->empty())
      out = it->at(0).get<int64_t>();
  };
  read_id("bos_token_id", c.bos_token_id);
  read_id("pad_token_id", c.pad_token_id);
  const auto eos = j.find("eos_token_id");
  if (eos != j.end()) {
    c.eos_token_ids.clear();
    if (eos->is_number_integer())
      c.eos_token_ids.push_back(eos->get<int64_t>());
    else if (eos->is_array())
      c.eos_token_ids = eos->get<std::vector<int64_t>>();
  }
  read_labels(j, c, source);
  std::string problem;
  read_config_field(j, "problem_type", problem, source);
  if (!problem.empty())
    c.problem_type = parse_problem_type(problem);
  read_config_field(j, "torch_dtype", c.torch_dtype, source);
  read_config_field(j, "dtype", c.torch_dtype, source);
  return c;
}

DecoderConfig DecoderConfig::from_file(const fs::path& path) {
  const fs::path file = fs::is_directory(path) ? path / "config.json" : path;
  std::ifstream in(file);
  if (!in) {
    throw std::runtime_error(
        error_message("DecoderConfig", "a readable config.json", file.string(),
                      "is this a Hugging Face model folder?"));
  }
  json j;
  try {
    in >> j;
  } catch (const json::exception& e) {
    throw std::runtime_error(
        error_message(file.string(), "valid JSON", e.what()));
  }
  return from_json(j, file.string());
}

}  // namespace peftcpp::models
