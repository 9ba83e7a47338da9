// parse_adapter_config_strict: a method configuration written by hand (the
// `method` section of a training config), where a typo must be an error
// rather than a silently ignored key that trains with a default.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <set>
#include <stdexcept>

#include "common/error.h"
#include "peft/adapter_config.h"
#include "peft/adapterhub_folder.h"

namespace peftcpp::peft {
namespace {

using nlohmann::json;

constexpr PeftType kAllTypes[] = {
    PeftType::kLora,    PeftType::kIa3,          PeftType::kPromptTuning,
    PeftType::kPTuning, PeftType::kPrefixTuning, PeftType::kBottleneck,
};

std::vector<std::string> type_list() {
  std::vector<std::string> names;
  for (PeftType t : kAllTypes)
    names.push_back(to_string(t));
  return names;
}

// "lora", "Prefix-Tuning" -> "LORA", "PREFIX_TUNING": hand-written configs
// need not shout.
std::string canonical_type_name(std::string name) {
  for (char& ch : name)
    ch = ch == '-'
             ? '_'
             : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return name;
}

[[noreturn]] void fail_unknown_key(const std::string& where, PeftType type,
                                   const std::string& key,
                                   const std::vector<std::string>& known) {
  std::string hint;
  size_t best = 3;  // at most two edits, and fewer than the key's length
  for (const auto& name : known) {
    const size_t d = edit_distance(key, name);
    if (d < best && d < key.size()) {
      best = d;
      hint = "did you mean \"" + name + "\"?";
    }
  }
  throw std::invalid_argument(
      error_message(where,
                    "a key of the " + to_string(type) + " config (one of: " +
                        join_names(known, ", ", /*max_items=*/100) + ")",
                    "\"" + key + "\"", hint));
}

// A field peftcpp does not implement (PEFT's use_qalora, megatron_config,
// AdapterHub's phm_*, ...) passes only at its default: a config copied
// from Python loads, one that asks for the feature is refused rather than
// ignored.
void check_unimplemented(const std::string& where, const std::string& key,
                         const json& value, const json& fallback) {
  // false is off too where PEFT's default is None (use_bdlora, ...).
  if (value.is_null() || value == fallback ||
      (fallback.is_null() && value == false))
    return;
  throw std::invalid_argument(
      error_message(where, "\"" + key + "\" at its default " + fallback.dump(),
                    value.dump(), "peftcpp does not implement " + key));
}

bool contains(const std::vector<std::string>& names, const std::string& key) {
  return std::find(names.begin(), names.end(), key) != names.end();
}

void check_task_type(const std::string& where, const std::string& task_type) {
  // PEFT's TaskType values.
  static const std::vector<std::string> kTaskTypes = {
      "SEQ_CLS",   "SEQ_2_SEQ_LM", "CAUSAL_LM",
      "TOKEN_CLS", "QUESTION_ANS", "FEATURE_EXTRACTION"};
  if (!contains(kTaskTypes, task_type)) {
    throw std::invalid_argument(
        error_message(where, "\"task_type\" one of " + join_names(kTaskTypes),
                      "\"" + task_type + "\""));
  }
}

AdapterConfig read_peft_method(const json& j, PeftType type,
                               const std::string& where) {
  const std::vector<std::string> known = adapter_config_keys(type);
  // What PEFT writes for the method at its defaults: every field it has.
  json peft_fields = json::parse(adapter_config_to_json(parse_adapter_config(
      json{{"peft_type", to_string(type)}}.dump(), where)));
  if (type == PeftType::kLora) {
    // LoraConfig fields of PEFT 0.21 that adapter_config_to_json does not
    // write either (other initialisations, aLoRA, Arrow, weight tying).
    for (const char* key :
         {"alora_invocation_tokens", "arrow_config", "corda_config",
          "eva_config", "kasa_config", "lora_ga_config", "monteclora_config",
          "use_bdlora", "velora_config"})
      peft_fields[key] = nullptr;
    peft_fields["ensure_weight_tying"] = false;
  }
  for (const auto& [key, value] : j.items()) {
    // The PEFT version that wrote the file: metadata, any value.
    if (contains(known, key) || key == "peft_version")
      continue;
    if (!peft_fields.contains(key))
      fail_unknown_key(where, type, key, known);
    check_unimplemented(where, key, value, peft_fields[key]);
  }
  // Every key is known now: the lenient reader reads exactly these.
  return parse_adapter_config(j.dump(), where);
}

// AdapterHub's preset named by "architecture" (default seq_bn), with the
// given BnConfig fields on top; the fields every config has read as for a
// PEFT method.
AdapterConfig read_bottleneck(const json& j, const std::string& where) {
  const std::vector<std::string> known =
      adapter_config_keys(PeftType::kBottleneck);
  std::string architecture = "seq_bn";
  if (const auto it = j.find("architecture"); it != j.end()) {
    if (!it->is_string()) {
      throw std::invalid_argument(error_message(
          where, "\"architecture\" to be a preset name", it->dump()));
    }
    architecture = it->get<std::string>();
  }
  json fields;
  try {
    fields = json::parse(
        bottleneck_config_to_json(BottleneckConfig::preset(architecture)));
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string(e.what()) + " in " + where);
  }
  json common = json::object();
  for (const auto& [key, value] : j.items()) {
    if (!contains(known, key)) {
      if (!fields.contains(key))
        fail_unknown_key(where, PeftType::kBottleneck, key, known);
      check_unimplemented(where, key, value, fields[key]);
    } else if (fields.contains(key)) {
      fields[key] = value;
    } else if (key != "architecture") {
      common[key] = value;
    }
  }
  // The shared fields (task_type, modules_to_save, ...) as any PEFT config
  // reads them; the type is only there to get past the reader.
  common["peft_type"] = to_string(PeftType::kLora);
  AdapterConfig config = parse_adapter_config(common.dump(), where);
  config.method = parse_bottleneck_config(fields.dump(), where);
  return config;
}

}  // namespace

AdapterConfig parse_adapter_config_strict(const std::string& json_text,
                                          const std::string& where) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::parse_error& e) {
    throw std::runtime_error(
        error_message(where, "valid JSON", std::string(e.what())));
  }
  if (!j.is_object()) {
    throw std::invalid_argument(
        error_message(where, "a mapping of config fields", j.dump()));
  }
  const auto type_it = j.find("peft_type");
  if (type_it == j.end() || !type_it->is_string()) {
    throw std::invalid_argument(error_message(
        where, "\"peft_type\" (one of " + join_names(type_list()) + ")",
        type_it == j.end() ? "none" : type_it->dump()));
  }
  PeftType type;
  try {
    type = parse_peft_type(canonical_type_name(type_it->get<std::string>()));
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string(e.what()) + " in " + where);
  }
  j["peft_type"] = to_string(type);
  AdapterConfig config;
  try {
    config = type == PeftType::kBottleneck ? read_bottleneck(j, where)
                                           : read_peft_method(j, type, where);
  } catch (const std::runtime_error& e) {
    // A wrong type in a hand-written config is a bad option, not a bad file.
    throw std::invalid_argument(e.what());
  }
  check_task_type(where, config.task_type);
  return config;
}

}  // namespace peftcpp::peft
