#include "models/decoder/load_decoder.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <regex>
#include <stdexcept>

#include "common/error.h"

namespace peftcpp::models {

namespace fs = std::filesystem;

namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

bool is_gguf_file(const fs::path& path) {
  return fs::is_regular_file(path) && path.extension() == ".gguf";
}

// A bare backbone checkpoint (GPT2Model: "h.0...", "wte.weight"; LlamaModel:
// "layers.0...") under a model with a head gets the backbone prefix.
StateDict add_backbone_prefix(StateDict sd, const std::string& prefix) {
  const std::string dotted = prefix + ".";
  const bool has_prefix = std::any_of(
      sd.begin(), sd.end(),
      [&](const auto& kv) { return starts_with(kv.first, dotted); });
  if (has_prefix)
    return sd;
  StateDict out;
  for (auto& [name, tensor] : sd) {
    const bool head =
        starts_with(name, "lm_head.") || starts_with(name, "score.");
    out.emplace(head ? name : dotted + name, std::move(tensor));
  }
  return out;
}

// GPT-2 keeps its projections as Conv1D with weight [in, out]; ours are
// Linear [out, in].
void transpose_conv1d(StateDict& sd) {
  static const std::regex conv1d(
      R"((^|\.)(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$)");
  for (auto& [name, tensor] : sd) {
    if (std::regex_search(name, conv1d))
      tensor = tensor.t().contiguous();
  }
}

// transformers' _init_weights for what a checkpoint lacks (a new score
// head): normal(0, initializer_range) weights, zero biases.
void init_missing(torch::nn::Module& module, const DecoderConfig& config,
                  const std::vector<std::string>& missing) {
  torch::NoGradGuard no_grad;
  auto params = module.named_parameters();
  for (const std::string& name : missing) {
    at::Tensor* t = params.find(name);
    if (t == nullptr)
      continue;
    if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0)
      t->zero_();
    else if (name.find("norm") != std::string::npos ||
             name.find("ln_") != std::string::npos)
      t->fill_(1.0);
    else
      t->normal_(0.0, config.initializer_range);
  }
}

nlohmann::json read_config_json(const fs::path& dir) {
  const fs::path file = dir / "config.json";
  std::ifstream in(file);
  if (!in)
    return nlohmann::json();
  try {
    nlohmann::json j;
    in >> j;
    return j;
  } catch (const nlohmann::json::exception&) {
    return nlohmann::json();
  }
}

}  // namespace

std::vector<std::string> LoadedDecoder::missing_body_keys() const {
  std::vector<std::string> body;
  for (const auto& k : missing_keys) {
    if (!starts_with(k, "score."))
      body.push_back(k);
  }
  return body;
}

torch::nn::Module& LoadedDecoder::module() {
  if (!classifier.is_empty())
    return *classifier;
  return *causal_lm;
}

DecoderBackbone& LoadedDecoder::backbone() {
  return classifier.is_empty() ? *causal_lm->backbone : *classifier->backbone;
}

bool is_decoder_checkpoint(const fs::path& path) {
  if (is_gguf_file(path))
    return true;
  if (!fs::is_directory(path))
    return false;
  const nlohmann::json j = read_config_json(path);
  return j.is_object() && j.contains("model_type") &&
         j["model_type"].is_string() &&
         DecoderConfig::is_decoder_model_type(
             j["model_type"].get<std::string>());
}

LoadedDecoder build_decoder(DecoderConfig config, StateDict sd,
                            const LoadDecoderOptions& options,
                            const std::string& source) {
  LoadedDecoder loaded;
  if (!options.id2label.empty())
    config.id2label = options.id2label;
  if (options.problem_type != ProblemType::kUnset)
    config.problem_type = options.problem_type;
  loaded.config = config;
  const bool with_classifier =
      options.head == DecoderHead::kSequenceClassification ||
      (options.head == DecoderHead::kAuto &&
       config.has_sequence_classification_head());

  sd = add_backbone_prefix(std::move(sd), config.base_model_prefix());
  if (config.family == DecoderFamily::kGpt2)
    transpose_conv1d(sd);
  if (with_classifier)
    loaded.classifier = DecoderSequenceClassifier(config);
  else
    loaded.causal_lm = CausalLM(config);
  torch::nn::Module& module = loaded.module();

  LoadOptions load_options;
  // Buffers transformers keeps out of its state dict that older checkpoints
  // carry (GPT-2's causal-mask buffers, LLaMA's inv_freq); a causal LM
  // checkpoint's lm_head under a classifier.
  load_options.ignore_unexpected = {R"(\.attn\.(masked_)?bias$)",
                                    R"(rotary_emb\.inv_freq$)"};
  if (with_classifier)
    load_options.ignore_unexpected.push_back(R"(^lm_head\.)");
  const LoadReport report = load_state_dict(module, sd, load_options);
  loaded.missing_keys = report.missing;
  loaded.unexpected_keys = report.unexpected;
  if (!report.missing.empty())
    init_missing(module, config, report.missing);

  if (options.strict) {
    const std::vector<std::string> missing_body = loaded.missing_body_keys();
    if (!missing_body.empty() || !loaded.unexpected_keys.empty()) {
      throw std::runtime_error(error_message(
          "load_decoder(" + source + ")",
          "a checkpoint that fits the model exactly",
          "missing [" + join_names(missing_body) + "], unexpected [" +
              join_names(loaded.unexpected_keys) + "]",
          "is the checkpoint for this config.json?"));
    }
  }
  module.to(options.device, options.dtype);
  module.eval();
  return loaded;
}

LoadedDecoder load_decoder(const fs::path& path,
                           const LoadDecoderOptions& options) {
  if (is_gguf_file(path))
    return load_decoder_gguf(path, options);
  DecoderConfig config = DecoderConfig::from_file(path);
  StateDict sd = load_checkpoint(path);
  return build_decoder(std::move(config), std::move(sd), options,
                       path.string());
}

}  // namespace peftcpp::models
