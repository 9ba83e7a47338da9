// peftcpp info: what a model folder holds and what we would build from it.

#include <torch/torch.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>

#include "cli/commands.h"
#include "data/tokenizer/model_files.h"
#include "models/checkpoint/gguf_checkpoint.h"
#include "models/checkpoint/state_dict.h"
#include "models/decoder/decoder_config.h"
#include "models/decoder/load_decoder.h"
#include "models/encoder/load_encoder.h"
#include "models/gguf/gguf_file.h"

namespace peftcpp::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Files a Hugging Face model folder may carry, in the order they matter.
const char* const kKnownFiles[] = {"config.json",
                                   "model.safetensors",
                                   "model.safetensors.index.json",
                                   "pytorch_model.bin",
                                   "pytorch_model.bin.index.json",
                                   "tokenizer.json",
                                   "vocab.txt",
                                   "tokenizer.model",
                                   "chat_template.jinja",
                                   "generation_config.json",
                                   "tokenizer_config.json",
                                   "special_tokens_map.json",
                                   "adapter_config.json",
                                   "adapter_model.safetensors"};

std::string human_count(int64_t n) {
  char buf[32];
  if (n >= 1000000000)
    std::snprintf(buf, sizeof buf, "%.2fB", n / 1e9);
  else if (n >= 1000000)
    std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else if (n >= 1000)
    std::snprintf(buf, sizeof buf, "%.1fK", n / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}

// Parameter counts of a checkpoint's tensors by dtype (buffers such as
// position_ids are not parameters).
int64_t count_parameters(const models::StateDict& sd,
                         std::map<std::string, int64_t>& by_dtype) {
  int64_t total = 0;
  for (const auto& [name, t] : sd) {
    if (name.find("position_ids") != std::string::npos)
      continue;
    by_dtype[std::string(c10::toString(t.scalar_type()))] += t.numel();
    total += t.numel();
  }
  return total;
}

json files_of(const fs::path& dir) {
  json files = json::array();
  for (const char* f : kKnownFiles) {
    const fs::path p = dir / f;
    if (fs::exists(p))
      files.push_back({{"name", f}, {"bytes", fs::file_size(p)}});
  }
  return files;
}

// The fields of a decoder config (folder or GGUF).
void describe_decoder_config(const models::DecoderConfig& config, json& j) {
  j["architecture"] = config.architectures.empty()
                          ? config.model_type
                          : config.architectures.front();
  j["model_type"] = config.model_type;
  j["layers"] = config.num_hidden_layers;
  j["hidden_size"] = config.hidden_size;
  j["attention_heads"] = config.num_attention_heads;
  j["key_value_heads"] = config.num_key_value_heads;
  j["intermediate_size"] = config.intermediate_size;
  j["hidden_act"] = models::activation_name(config.hidden_act);
  j["max_sequence_length"] = config.max_position_embeddings;
  j["vocab_size"] = config.vocab_size;
  j["tied_embeddings"] = config.tie_word_embeddings;
  if (config.family == models::DecoderFamily::kLlama)
    j["rope"] = config.rope.rope_type + ", theta " +
                std::to_string(static_cast<int64_t>(config.rope.rope_theta));
  j["config_dtype"] = config.torch_dtype;
  if (config.has_sequence_classification_head())
    j["labels"] = config.id2label;
}

// A GGUF file: the config transformers would build, the tensors by ggml
// type, read from the header only (nothing is dequantized).
json describe_gguf(const fs::path& path) {
  const gguf::GgufFile file = gguf::GgufFile::open(path);
  const json config_json = models::gguf_config(file);
  const models::DecoderConfig config =
      models::DecoderConfig::from_json(config_json, path.string());
  std::map<std::string, int64_t> by_type;
  int64_t total = 0;
  for (const auto& t : file.tensors()) {
    by_type[gguf::ggml_type_name(t.type)] += t.num_elements();
    total += t.num_elements();
  }
  json j;
  j["folder"] = fs::absolute(path).string();
  describe_decoder_config(config, j);
  j["config_dtype"] = "GGUF v" + std::to_string(file.version());
  j["parameters"] = total;
  j["parameters_by_dtype"] = by_type;
  j["files"] = json::array(
      {{{"name", path.filename().string()}, {"bytes", fs::file_size(path)}}});
  return j;
}

json describe(const fs::path& dir) {
  if (data::is_gguf_path(dir))
    return describe_gguf(dir);
  std::map<std::string, int64_t> params_by_dtype;
  json j;
  j["folder"] = fs::absolute(dir).string();
  if (models::is_decoder_checkpoint(dir)) {
    describe_decoder_config(models::DecoderConfig::from_file(dir), j);
    j["parameters"] =
        count_parameters(models::load_checkpoint(dir), params_by_dtype);
    j["parameters_by_dtype"] = params_by_dtype;
    j["files"] = files_of(dir);
    return j;
  }
  const auto config = models::EncoderConfig::from_file(dir);
  const int64_t total =
      count_parameters(models::load_checkpoint(dir), params_by_dtype);
  j["architecture"] = config.architectures.empty()
                          ? config.model_type
                          : config.architectures.front();
  j["model_type"] = config.model_type;
  j["layers"] = config.num_hidden_layers;
  j["hidden_size"] = config.hidden_size;
  j["attention_heads"] = config.num_attention_heads;
  j["intermediate_size"] = config.intermediate_size;
  j["hidden_act"] = models::activation_name(config.hidden_act);
  j["max_sequence_length"] = config.max_sequence_length();
  j["vocab_size"] = config.vocab_size;
  j["parameters"] = total;
  j["parameters_by_dtype"] = params_by_dtype;
  j["config_dtype"] = config.torch_dtype;
  if (config.has_sequence_classification_head()) {
    j["labels"] = config.id2label;
    if (config.problem_type != models::ProblemType::kUnset)
      j["problem_type"] = models::problem_type_name(config.problem_type);
  }
  j["files"] = files_of(dir);
  return j;
}

void print_table(const json& j) {
  auto row = [](const char* k, const std::string& v) {
    std::printf("  %-20s %s\n", k, v.c_str());
  };
  std::printf("%s\n", j["folder"].get<std::string>().c_str());
  row("architecture", j["architecture"].get<std::string>());
  row("model_type", j["model_type"].get<std::string>());
  row("layers", std::to_string(j["layers"].get<int64_t>()));
  row("hidden_size", std::to_string(j["hidden_size"].get<int64_t>()));
  row("attention_heads", std::to_string(j["attention_heads"].get<int64_t>()));
  if (j.contains("key_value_heads"))
    row("key_value_heads", std::to_string(j["key_value_heads"].get<int64_t>()));
  row("intermediate_size",
      std::to_string(j["intermediate_size"].get<int64_t>()));
  row("hidden_act", j["hidden_act"].get<std::string>());
  row("max_sequence_length",
      std::to_string(j["max_sequence_length"].get<int64_t>()));
  row("vocab_size", std::to_string(j["vocab_size"].get<int64_t>()));
  if (j.contains("tied_embeddings"))
    row("tied_embeddings", j["tied_embeddings"].get<bool>() ? "yes" : "no");
  if (j.contains("rope"))
    row("rope", j["rope"].get<std::string>());
  const int64_t total = j["parameters"].get<int64_t>();
  row("parameters", human_count(total) + " (" + std::to_string(total) + ")");
  std::string dtypes;
  for (const auto& [dtype, n] : j["parameters_by_dtype"].items()) {
    if (!dtypes.empty())
      dtypes += ", ";
    dtypes += dtype + ": " + human_count(n.get<int64_t>());
  }
  row("stored dtype", dtypes);
  row("config dtype", j["config_dtype"].get<std::string>());
  if (j.contains("labels")) {
    std::string labels;
    for (const auto& l : j["labels"])
      labels += (labels.empty() ? "" : ", ") + l.get<std::string>();
    row("labels", labels);
  }
  if (j.contains("problem_type"))
    row("problem_type", j["problem_type"].get<std::string>());
  std::printf("  files:\n");
  for (const auto& f : j["files"]) {
    std::printf("    %-30s %12s bytes\n", f["name"].get<std::string>().c_str(),
                std::to_string(f["bytes"].get<uint64_t>()).c_str());
  }
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("info",
                                 "Describe a model folder or GGUF file: "
                                 "architecture, parameters, dtype, files");
  auto dir = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("--model", *dir,
                  "Hugging Face model folder (encoder or decoder) or a .gguf "
                  "file")
      ->required();
  cmd->add_flag("--json", *as_json, "Print JSON instead of a table");
  cmd->callback([dir, as_json] {
    const json j = describe(*dir);
    if (*as_json) {
      std::cout << j.dump(2) << "\n";
    } else {
      print_table(j);
    }
  });
}

}  // namespace peftcpp::cli
