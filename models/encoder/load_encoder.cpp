#include "models/encoder/load_encoder.h"

#include <algorithm>
#include <stdexcept>

#include "common/error.h"
#include "models/checkpoint/state_dict.h"

namespace peftcpp::models {

namespace fs = std::filesystem;

namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// Brings checkpoint keys to the model's naming: a model with a head names its
// encoder "<prefix>.", a bare encoder does not; checkpoints come both ways
// (a BertModel checkpoint under a classifier, a BertForMaskedLM checkpoint
// under a bare encoder).
StateDict align_prefix(StateDict sd, const std::string& prefix,
                       bool model_has_prefix) {
  const std::string dotted = prefix + ".";
  const bool ckpt_has_prefix = std::any_of(
      sd.begin(), sd.end(),
      [&](const auto& kv) { return starts_with(kv.first, dotted); });
  if (model_has_prefix == ckpt_has_prefix)
    return sd;
  StateDict out;
  for (auto& [name, tensor] : sd) {
    if (model_has_prefix) {
      out.emplace(dotted + name, std::move(tensor));
    } else if (starts_with(name, dotted)) {
      out.emplace(name.substr(dotted.size()), std::move(tensor));
    } else {
      out.emplace(name,
                  std::move(tensor));  // e.g. "cls.predictions...": unexpected
    }
  }
  return out;
}

}  // namespace

c10::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32" || name == "float")
    return c10::kFloat;
  if (name == "bfloat16" || name == "bf16")
    return c10::kBFloat16;
  if (name == "float16" || name == "fp16" || name == "half")
    return c10::kHalf;
  throw std::invalid_argument(
      error_message("dtype", "float32, bfloat16 or float16 (fp32, bf16, fp16)",
                    "\"" + name + "\""));
}

torch::nn::Module& LoadedEncoder::module() {
  if (!classifier.is_empty())
    return *classifier;
  return *encoder;
}

std::vector<std::string> LoadedEncoder::missing_body_keys() const {
  std::vector<std::string> body;
  for (const auto& k : missing_keys) {
    if (!starts_with(k, "classifier."))
      body.push_back(k);
  }
  return body;
}

EncoderModel& LoadedEncoder::base() {
  return classifier.is_empty() ? encoder : classifier->encoder;
}

LoadedEncoder load_encoder(const fs::path& dir,
                           const LoadEncoderOptions& options) {
  LoadedEncoder loaded;
  loaded.config = EncoderConfig::from_file(dir);
  if (!options.id2label.empty())
    loaded.config.id2label = options.id2label;
  if (options.problem_type != ProblemType::kUnset)
    loaded.config.problem_type = options.problem_type;
  const EncoderConfig& config = loaded.config;
  const bool with_head = options.head == EncoderHead::kSequenceClassification ||
                         (options.head == EncoderHead::kAuto &&
                          config.has_sequence_classification_head());

  StateDict sd = load_checkpoint(dir);
  const std::string prefix = config.base_model_prefix();
  sd = align_prefix(std::move(sd), prefix, with_head);

  if (with_head) {
    loaded.classifier = SequenceClassifier(config);
  } else {
    // A bare encoder gets a pooler when the checkpoint has one (BertModel
    // checkpoints do; RoBERTa classifiers' encoders do not).
    const bool pooler = std::any_of(sd.begin(), sd.end(), [](const auto& kv) {
      return starts_with(kv.first, "pooler.");
    });
    loaded.encoder = EncoderModel(config, pooler);
  }
  torch::nn::Module& module = loaded.module();
  LoadOptions load_options;
  // Buffers transformers keeps out of its state dict; old checkpoints still
  // carry them.
  load_options.ignore_unexpected = {R"((^|\.)embeddings\.position_ids$)",
                                    R"((^|\.)embeddings\.token_type_ids$)"};
  const LoadReport report = load_state_dict(module, sd, load_options);
  loaded.missing_keys = report.missing;
  // Whatever the checkpoint lacks (a new head) starts from transformers'
  // initialisation rather than LibTorch's; loaded weights are not touched.
  if (!report.missing.empty())
    init_encoder_weights(module, config, report.missing);
  loaded.unexpected_keys = report.unexpected;

  if (options.strict) {
    const std::vector<std::string> missing_body = loaded.missing_body_keys();
    if (!missing_body.empty() || !loaded.unexpected_keys.empty()) {
      throw std::runtime_error(error_message(
          "load_encoder(" + dir.string() + ")",
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

}  // namespace peftcpp::models
