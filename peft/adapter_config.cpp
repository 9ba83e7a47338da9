#include "peft/adapter_config.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <set>
#include <stdexcept>

#include "common/error.h"

namespace peftcpp::peft {
namespace {

using nlohmann::json;

const std::vector<std::pair<PeftType, std::string>>& type_names() {
  static const std::vector<std::pair<PeftType, std::string>> kNames = {
      {PeftType::kLora, "LORA"},
      {PeftType::kIa3, "IA3"},
      {PeftType::kPromptTuning, "PROMPT_TUNING"},
      {PeftType::kPTuning, "P_TUNING"},
      {PeftType::kPrefixTuning, "PREFIX_TUNING"},
      {PeftType::kBottleneck, "BOTTLENECK"},
  };
  return kNames;
}

// Reads one field, leaving `out` at its default when the key is absent or
// null; a present value of the wrong type names the file and the key. It
// records every key it is asked for, present or not, so the strict reader
// knows the method's keys without a second list that could drift.
class Reader {
 public:
  Reader(const json& j, std::string where) : j_(j), where_(std::move(where)) {}

  // The value under `key`, or nullptr when absent or null.
  const json* find(const char* key) const {
    asked_.insert(key);
    const auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }

  template <class T>
  void get(const char* key, T& out) const {
    const json* it = find(key);
    if (it == nullptr)
      return;
    try {
      out = it->get<T>();
    } catch (const json::exception&) {
      fail(key, type_name<T>(), *it);
    }
  }

  // PEFT's `str | list[str] | None` fields (target_modules, ...).
  void selector(const char* key, ModuleSelector& out) const {
    const json* it = find(key);
    if (it == nullptr)
      return;
    if (it->is_string()) {
      out = ModuleSelector::pattern(it->get<std::string>());
    } else if (it->is_array()) {
      out.names.clear();
      for (const auto& e : *it) {
        if (!e.is_string())
          fail(key, "a string or a list of strings", *it);
        out.names.push_back(e.get<std::string>());
      }
      out.regex.reset();
    } else {
      fail(key, "a string or a list of strings", *it);
    }
  }

  // `int | list[int] | None`.
  void int_list(const char* key, std::vector<int64_t>& out) const {
    const json* it = find(key);
    if (it == nullptr)
      return;
    if (it->is_number_integer()) {
      out = {it->get<int64_t>()};
      return;
    }
    get(key, out);
  }

  // `str | list[str] | None`.
  void string_list(const char* key, std::vector<std::string>& out) const {
    const json* it = find(key);
    if (it == nullptr)
      return;
    if (it->is_string()) {
      out = {it->get<std::string>()};
      return;
    }
    get(key, out);
  }

  [[noreturn]] void fail(const char* key, const std::string& expected,
                         const json& got) const {
    throw std::runtime_error(error_message(
        where_, std::string("\"") + key + "\" to be " + expected, got.dump()));
  }

  const json& raw() const { return j_; }
  // Every key asked for so far.
  const std::set<std::string>& asked() const { return asked_; }

 private:
  template <class T>
  static std::string type_name() {
    if constexpr (std::is_same_v<T, bool>)
      return "true or false";
    else if constexpr (std::is_integral_v<T>)
      return "an integer";
    else if constexpr (std::is_floating_point_v<T>)
      return "a number";
    else if constexpr (std::is_same_v<T, std::string>)
      return "a string";
    else
      return "a value of the documented type";
  }

  const json& j_;
  std::string where_;
  mutable std::set<std::string> asked_;
};

void read_prompt_learning(const Reader& r, PromptLearningConfig& c) {
  r.get("num_virtual_tokens", c.num_virtual_tokens);
  r.get("token_dim", c.token_dim);
  r.get("num_transformer_submodules", c.num_transformer_submodules);
  r.get("num_attention_heads", c.num_attention_heads);
  r.get("num_layers", c.num_layers);
}

LoraConfig read_lora(const Reader& r) {
  LoraConfig c;
  r.get("r", c.r);
  r.get("lora_alpha", c.lora_alpha);
  r.get("lora_dropout", c.lora_dropout);
  r.selector("target_modules", c.target_modules);
  r.selector("exclude_modules", c.exclude_modules);
  r.get("use_rslora", c.use_rslora);
  r.get("use_dora", c.use_dora);
  r.get("bias", c.bias);
  r.get("lora_bias", c.lora_bias);
  r.get("rank_pattern", c.rank_pattern);
  r.get("alpha_pattern", c.alpha_pattern);
  r.int_list("layers_to_transform", c.layers_to_transform);
  r.string_list("layers_pattern", c.layers_pattern);
  r.get("fan_in_fan_out", c.fan_in_fan_out);
  if (const json* it = r.find("init_lora_weights")) {
    if (it->is_boolean()) {
      c.init_lora_weights =
          it->get<bool>() ? LoraInit::kDefault : LoraInit::kNone;
    } else if (it->is_string() && it->get<std::string>() == "gaussian") {
      c.init_lora_weights = LoraInit::kGaussian;
    } else if (it->is_string()) {
      // PiSSA, OLoRA, LoftQ, ... change the base weights at init; they do
      // not matter once the adapter is trained and saved, so a saved
      // adapter loads whatever its init was.
      c.init_lora_weights = LoraInit::kDefault;
    } else {
      r.fail("init_lora_weights", "true, false or \"gaussian\"", *it);
    }
  }
  return c;
}

Ia3Config read_ia3(const Reader& r) {
  Ia3Config c;
  r.selector("target_modules", c.target_modules);
  r.selector("exclude_modules", c.exclude_modules);
  if (r.find("feedforward_modules") != nullptr) {
    ModuleSelector ff;
    r.selector("feedforward_modules", ff);
    c.feedforward_modules = ff;
  }
  r.get("init_ia3_weights", c.init_ia3_weights);
  r.get("fan_in_fan_out", c.fan_in_fan_out);
  r.int_list("layers_to_transform", c.layers_to_transform);
  r.string_list("layers_pattern", c.layers_pattern);
  return c;
}

PromptTuningInit parse_prompt_init(const std::string& s, const Reader& r) {
  if (s == "RANDOM")
    return PromptTuningInit::kRandom;
  if (s == "TEXT")
    return PromptTuningInit::kText;
  if (s == "SAMPLE_VOCAB")
    return PromptTuningInit::kSampleVocab;
  r.fail("prompt_tuning_init", "RANDOM, TEXT or SAMPLE_VOCAB", json(s));
}

const char* prompt_init_name(PromptTuningInit init) {
  switch (init) {
    case PromptTuningInit::kRandom:
      return "RANDOM";
    case PromptTuningInit::kText:
      return "TEXT";
    case PromptTuningInit::kSampleVocab:
      return "SAMPLE_VOCAB";
  }
  return "RANDOM";
}

json selector_json(const ModuleSelector& s) {
  if (s.regex)
    return *s.regex;
  if (s.names.empty())
    return nullptr;
  return s.names;
}

json number_json(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15)
    return static_cast<int64_t>(v);
  return v;
}

json int_list_json(const std::vector<int64_t>& v) {
  return v.empty() ? json(nullptr) : json(v);
}
json string_list_json(const std::vector<std::string>& v) {
  return v.empty() ? json(nullptr) : json(v);
}

void write_prompt_learning(json& j, const PromptLearningConfig& c) {
  j["num_virtual_tokens"] = c.num_virtual_tokens;
  j["token_dim"] = c.token_dim;
  j["num_transformer_submodules"] = c.num_transformer_submodules;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_layers"] = c.num_layers;
}

// The fields every PEFT config has.
void read_common(const Reader& r, AdapterConfig& config) {
  r.find("peft_type");
  r.get("task_type", config.task_type);
  r.get("base_model_name_or_path", config.base_model_name_or_path);
  r.get("inference_mode", config.inference_mode);
  if (r.find("modules_to_save") != nullptr) {
    std::vector<std::string> names;
    r.string_list("modules_to_save", names);
    config.modules_to_save = names;
  }
}

// The method's own fields, for the PEFT methods (not BOTTLENECK).
MethodConfig read_method(const Reader& r, PeftType type) {
  switch (type) {
    case PeftType::kLora:
      return read_lora(r);
    case PeftType::kIa3:
      return read_ia3(r);
    case PeftType::kPromptTuning: {
      PromptTuningConfig c;
      read_prompt_learning(r, c);
      std::string init = "RANDOM";
      r.get("prompt_tuning_init", init);
      c.prompt_tuning_init = parse_prompt_init(init, r);
      r.get("prompt_tuning_init_text", c.prompt_tuning_init_text);
      r.get("tokenizer_name_or_path", c.tokenizer_name_or_path);
      return c;
    }
    case PeftType::kPTuning: {
      PromptEncoderConfig c;
      read_prompt_learning(r, c);
      r.get("encoder_reparameterization_type",
            c.encoder_reparameterization_type);
      r.get("encoder_hidden_size", c.encoder_hidden_size);
      r.get("encoder_num_layers", c.encoder_num_layers);
      r.get("encoder_dropout", c.encoder_dropout);
      return c;
    }
    case PeftType::kPrefixTuning: {
      PrefixTuningConfig c;
      read_prompt_learning(r, c);
      r.get("encoder_hidden_size", c.encoder_hidden_size);
      r.get("prefix_projection", c.prefix_projection);
      return c;
    }
    case PeftType::kBottleneck:
      break;
  }
  return BottleneckConfig{};
}

// The BnConfig fields peftcpp implements; AdapterHub's others (Compacter's
// phm_*, invertible adapters, cross adapters) pass at their defaults only.
const std::vector<std::string>& bottleneck_keys() {
  static const std::vector<std::string> kKeys = {"adapter_residual_before_ln",
                                                 "dropout",
                                                 "init_weights",
                                                 "init_weights_seed",
                                                 "is_parallel",
                                                 "leave_out",
                                                 "ln_after",
                                                 "ln_before",
                                                 "mh_adapter",
                                                 "non_linearity",
                                                 "original_ln_after",
                                                 "original_ln_before",
                                                 "output_adapter",
                                                 "reduction_factor",
                                                 "residual_before_ln",
                                                 "scaling",
                                                 "stochastic_depth",
                                                 "use_gating"};
  return kKeys;
}

}  // namespace

std::string to_string(PeftType type) {
  for (const auto& [t, name] : type_names()) {
    if (t == type)
      return name;
  }
  return "UNKNOWN";
}

PeftType parse_peft_type(const std::string& name) {
  std::vector<std::string> known;
  for (const auto& [t, n] : type_names()) {
    if (n == name)
      return t;
    known.push_back(n);
  }
  throw std::invalid_argument(error_message(
      "peft_type", "one of " + join_names(known), "\"" + name + "\"",
      "peftcpp reads the PEFT methods listed; others (AdaLoRA, LoHa, ...) "
      "are not supported yet"));
}

bool is_prompt_learning(PeftType type) {
  return type == PeftType::kPromptTuning || type == PeftType::kPTuning ||
         type == PeftType::kPrefixTuning;
}

PeftType AdapterConfig::peft_type() const {
  switch (method.index()) {
    case 0:
      return PeftType::kLora;
    case 1:
      return PeftType::kIa3;
    case 2:
      return PeftType::kPromptTuning;
    case 3:
      return PeftType::kPTuning;
    case 4:
      return PeftType::kPrefixTuning;
    default:
      return PeftType::kBottleneck;
  }
}

AdapterConfig parse_adapter_config(const std::string& json_text,
                                   const std::string& where) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::parse_error& e) {
    throw std::runtime_error(
        error_message(where, "valid JSON", std::string(e.what())));
  }
  if (!j.is_object())
    throw std::runtime_error(error_message(where, "a JSON object", j.dump()));
  const Reader r(j, where);
  std::string type_name;
  r.get("peft_type", type_name);
  if (type_name.empty()) {
    throw std::runtime_error(
        error_message(where, "a \"peft_type\" field", "none",
                      "is this a PEFT adapter_config.json?"));
  }
  PeftType type;
  try {
    type = parse_peft_type(type_name);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(std::string(e.what()) + " in " + where);
  }
  if (type == PeftType::kBottleneck) {
    throw std::runtime_error(error_message(
        where, "a PEFT adapter_config.json", "peft_type BOTTLENECK",
        "bottleneck adapters are stored in AdapterHub's format"));
  }
  AdapterConfig config;
  read_common(r, config);
  config.method = read_method(r, type);
  return config;
}

std::vector<std::string> adapter_config_keys(PeftType type) {
  const json j = {{"peft_type", to_string(type)}};
  const Reader r(j, "adapter_config_keys");
  AdapterConfig config;
  read_common(r, config);
  std::set<std::string> keys;
  if (type == PeftType::kBottleneck) {
    r.find("architecture");
    keys.insert(bottleneck_keys().begin(), bottleneck_keys().end());
  } else {
    read_method(r, type);
  }
  keys.insert(r.asked().begin(), r.asked().end());
  return {keys.begin(), keys.end()};
}

std::string adapter_config_to_json(const AdapterConfig& config) {
  json j;
  j["peft_type"] = to_string(config.peft_type());
  j["task_type"] = config.task_type;
  j["base_model_name_or_path"] = config.base_model_name_or_path.empty()
                                     ? json(nullptr)
                                     : json(config.base_model_name_or_path);
  j["inference_mode"] = config.inference_mode;
  j["modules_to_save"] =
      config.modules_to_save ? json(*config.modules_to_save) : json(nullptr);
  j["revision"] = nullptr;
  j["auto_mapping"] = nullptr;
  if (const auto* c = std::get_if<LoraConfig>(&config.method)) {
    j["r"] = c->r;
    j["lora_alpha"] = number_json(c->lora_alpha);
    j["lora_dropout"] = c->lora_dropout;
    j["target_modules"] = selector_json(c->target_modules);
    j["exclude_modules"] = selector_json(c->exclude_modules);
    j["use_rslora"] = c->use_rslora;
    j["use_dora"] = c->use_dora;
    j["init_lora_weights"] =
        c->init_lora_weights == LoraInit::kGaussian
            ? json("gaussian")
            : json(c->init_lora_weights == LoraInit::kDefault);
    j["bias"] = c->bias;
    j["lora_bias"] = c->lora_bias;
    j["rank_pattern"] = json(c->rank_pattern);
    json alpha = json::object();
    for (const auto& [k, v] : c->alpha_pattern)
      alpha[k] = number_json(v);
    j["alpha_pattern"] = alpha;
    j["layers_to_transform"] = int_list_json(c->layers_to_transform);
    j["layers_pattern"] = string_list_json(c->layers_pattern);
    j["fan_in_fan_out"] = c->fan_in_fan_out;
    j["layer_replication"] = nullptr;
    j["megatron_config"] = nullptr;
    j["megatron_core"] = "megatron.core";
    j["loftq_config"] = json::object();
    j["target_parameters"] = nullptr;
    j["trainable_token_indices"] = nullptr;
    j["use_qalora"] = false;
    j["qalora_group_size"] = 16;
  } else if (const auto* c = std::get_if<Ia3Config>(&config.method)) {
    j["target_modules"] = selector_json(c->target_modules);
    j["exclude_modules"] = selector_json(c->exclude_modules);
    j["feedforward_modules"] =
        !c->feedforward_modules ? json(nullptr)
                                : (c->feedforward_modules->regex
                                       ? json(*c->feedforward_modules->regex)
                                       : json(c->feedforward_modules->names));
    j["init_ia3_weights"] = c->init_ia3_weights;
    j["fan_in_fan_out"] = c->fan_in_fan_out;
    j["layers_to_transform"] = int_list_json(c->layers_to_transform);
    j["layers_pattern"] = string_list_json(c->layers_pattern);
  } else if (const auto* c = std::get_if<PromptTuningConfig>(&config.method)) {
    write_prompt_learning(j, *c);
    j["prompt_tuning_init"] = prompt_init_name(c->prompt_tuning_init);
    j["prompt_tuning_init_text"] = c->prompt_tuning_init_text.empty()
                                       ? json(nullptr)
                                       : json(c->prompt_tuning_init_text);
    j["tokenizer_name_or_path"] = c->tokenizer_name_or_path.empty()
                                      ? json(nullptr)
                                      : json(c->tokenizer_name_or_path);
    j["tokenizer_kwargs"] = nullptr;
  } else if (const auto* c = std::get_if<PromptEncoderConfig>(&config.method)) {
    write_prompt_learning(j, *c);
    j["encoder_reparameterization_type"] = c->encoder_reparameterization_type;
    j["encoder_hidden_size"] = c->encoder_hidden_size;
    j["encoder_num_layers"] = c->encoder_num_layers;
    j["encoder_dropout"] = c->encoder_dropout;
  } else if (const auto* c = std::get_if<PrefixTuningConfig>(&config.method)) {
    write_prompt_learning(j, *c);
    j["encoder_hidden_size"] = c->encoder_hidden_size;
    j["prefix_projection"] = c->prefix_projection;
    j["init_weights"] = nullptr;
  } else {
    throw std::invalid_argument(error_message(
        "adapter_config_to_json", "a PEFT method", "a bottleneck adapter",
        "use AdapterHub's format for those"));
  }
  return j.dump(2);
}

}  // namespace peftcpp::peft
