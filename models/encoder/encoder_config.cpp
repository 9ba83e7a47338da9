#include "models/encoder/encoder_config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <stdexcept>
#include <utility>

#include "common/error.h"
#include "models/config_fields.h"

namespace peftcpp::models {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The plain numeric fields, under their config.json names: read and written
// by one table so the two directions cannot drift apart.
constexpr std::pair<const char*, int64_t EncoderConfig::*> kIntFields[] = {
    {"vocab_size", &EncoderConfig::vocab_size},
    {"hidden_size", &EncoderConfig::hidden_size},
    {"num_hidden_layers", &EncoderConfig::num_hidden_layers},
    {"num_attention_heads", &EncoderConfig::num_attention_heads},
    {"intermediate_size", &EncoderConfig::intermediate_size},
    {"max_position_embeddings", &EncoderConfig::max_position_embeddings},
    {"type_vocab_size", &EncoderConfig::type_vocab_size},
    {"pad_token_id", &EncoderConfig::pad_token_id},
};
constexpr std::pair<const char*, double EncoderConfig::*> kDoubleFields[] = {
    {"hidden_dropout_prob", &EncoderConfig::hidden_dropout_prob},
    {"attention_probs_dropout_prob",
     &EncoderConfig::attention_probs_dropout_prob},
    {"layer_norm_eps", &EncoderConfig::layer_norm_eps},
    {"initializer_range", &EncoderConfig::initializer_range},
};

}  // namespace

ProblemType parse_problem_type(const std::string& name) {
  if (name == "regression")
    return ProblemType::kRegression;
  if (name == "single_label_classification")
    return ProblemType::kSingleLabelClassification;
  if (name == "multi_label_classification")
    return ProblemType::kMultiLabelClassification;
  throw std::invalid_argument(error_message(
      "problem_type",
      "regression, single_label_classification or multi_label_classification",
      "\"" + name + "\""));
}

std::string problem_type_name(ProblemType type) {
  switch (type) {
    case ProblemType::kRegression:
      return "regression";
    case ProblemType::kSingleLabelClassification:
      return "single_label_classification";
    case ProblemType::kMultiLabelClassification:
      return "multi_label_classification";
    case ProblemType::kUnset:
      break;
  }
  return "";
}

std::string EncoderConfig::base_model_prefix() const {
  return family == EncoderFamily::kRoberta ? "roberta" : "bert";
}

int64_t EncoderConfig::max_sequence_length() const {
  // RoBERTa numbers positions from padding_idx + 1, so that many rows of the
  // table are never used by a real token.
  return family == EncoderFamily::kRoberta
             ? max_position_embeddings - pad_token_id - 1
             : max_position_embeddings;
}

bool EncoderConfig::has_sequence_classification_head() const {
  return std::any_of(
      architectures.begin(), architectures.end(), [](const std::string& a) {
        return a.find("ForSequenceClassification") != std::string::npos;
      });
}

EncoderConfig EncoderConfig::from_json(const json& j,
                                       const std::string& source) {
  if (!j.is_object()) {
    throw std::runtime_error(
        error_message(source, "a JSON object", std::string(j.type_name())));
  }
  EncoderConfig c;
  read_config_field(j, "model_type", c.model_type, source);
  if (c.model_type == "bert") {
    c.family = EncoderFamily::kBert;
  } else if (c.model_type == "roberta") {
    c.family = EncoderFamily::kRoberta;
  } else {
    throw std::runtime_error(error_message(
        source, "model_type \"bert\" or \"roberta\"",
        "\"" + c.model_type + "\"",
        "BERT-family encoders are supported; MiniLM checkpoints are \"bert\""));
  }
  read_config_field(j, "architectures", c.architectures, source);
  // RoBERTa's <pad> is id 1; transformers' RobertaConfig defaults to it.
  if (c.family == EncoderFamily::kRoberta)
    c.pad_token_id = 1;
  for (const auto& [key, member] : kIntFields)
    read_config_field(j, key, c.*member, source);
  for (const auto& [key, member] : kDoubleFields)
    read_config_field(j, key, c.*member, source);
  std::string act = "gelu";
  read_config_field(j, "hidden_act", act, source);
  c.hidden_act = parse_activation(act);
  bool is_decoder = false;
  read_config_field(j, "is_decoder", is_decoder, source);
  if (is_decoder) {
    throw std::runtime_error(error_message(
        source, "an encoder (is_decoder false)", "is_decoder true",
        "causal BERT-style decoders are not supported"));
  }
  double classifier_dropout = -1;
  read_config_field(j, "classifier_dropout", classifier_dropout, source);
  if (classifier_dropout >= 0)
    c.classifier_dropout = classifier_dropout;
  // transformers 5 writes "dtype", 4.x "torch_dtype".
  read_config_field(j, "torch_dtype", c.torch_dtype, source);
  read_config_field(j, "dtype", c.torch_dtype, source);

  std::string pos = "absolute";
  read_config_field(j, "position_embedding_type", pos, source);
  if (pos != "absolute") {
    throw std::runtime_error(error_message(
        source, "position_embedding_type \"absolute\"", "\"" + pos + "\""));
  }

  // Labels: id2label wins (transformers writes it); else num_labels; else 2.
  if (auto it = j.find("id2label"); it != j.end() && it->is_object()) {
    std::map<int64_t, std::string> by_id;
    for (const auto& [k, v] : it->items()) {
      size_t used = 0;
      int64_t id = -1;
      try {
        id = std::stoll(k, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != k.size() || id < 0) {
        throw std::runtime_error(error_message(
            source, "id2label keys that are label ids (\"0\", \"1\", ...)",
            "key \"" + k + "\""));
      }
      by_id[id] = v.is_string() ? v.get<std::string>() : v.dump();
    }
    if (!by_id.empty() &&
        by_id.rbegin()->first != static_cast<int64_t>(by_id.size()) - 1) {
      throw std::runtime_error(error_message(
          source, "id2label ids 0.." + std::to_string(by_id.size() - 1),
          "largest id " + std::to_string(by_id.rbegin()->first)));
    }
    for (const auto& [id, label] : by_id)
      c.id2label.push_back(label);
  } else {
    int64_t n = 2;
    read_config_field(j, "num_labels", n, source);
    for (int64_t i = 0; i < n; ++i)
      c.id2label.push_back("LABEL_" + std::to_string(i));
  }
  std::string problem;
  read_config_field(j, "problem_type", problem, source);
  if (!problem.empty())
    c.problem_type = parse_problem_type(problem);

  check_positive_field(c.vocab_size, "vocab_size", source);
  check_positive_field(c.hidden_size, "hidden_size", source);
  check_positive_field(c.num_hidden_layers, "num_hidden_layers", source);
  check_positive_field(c.num_attention_heads, "num_attention_heads", source);
  check_positive_field(c.intermediate_size, "intermediate_size", source);
  check_positive_field(c.max_position_embeddings, "max_position_embeddings",
                       source);
  if (c.pad_token_id < 0 || c.pad_token_id >= c.vocab_size) {
    throw std::runtime_error(error_message(
        source,
        "pad_token_id in [0, vocab_size " + std::to_string(c.vocab_size) + ")",
        std::to_string(c.pad_token_id)));
  }
  if (c.hidden_size % c.num_attention_heads != 0) {
    throw std::runtime_error(
        error_message(source, "hidden_size divisible by num_attention_heads",
                      std::to_string(c.hidden_size) + " and " +
                          std::to_string(c.num_attention_heads)));
  }
  return c;
}

EncoderConfig EncoderConfig::from_file(const fs::path& path) {
  const fs::path file = fs::is_directory(path) ? path / "config.json" : path;
  std::ifstream in(file);
  if (!in) {
    throw std::runtime_error(
        error_message("EncoderConfig", "a readable config.json",
                      "no file '" + file.string() + "'",
                      "point at a Hugging Face model folder"));
  }
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    throw std::runtime_error(
        error_message(file.string(), "valid JSON", std::string(e.what())));
  }
  return from_json(j, file.string());
}

json EncoderConfig::to_json() const {
  json j;
  j["model_type"] = model_type;
  j["architectures"] = architectures;
  for (const auto& [key, member] : kIntFields)
    j[key] = this->*member;
  for (const auto& [key, member] : kDoubleFields)
    j[key] = this->*member;
  j["hidden_act"] = activation_name(hidden_act);
  j["position_embedding_type"] = "absolute";
  if (classifier_dropout)
    j["classifier_dropout"] = *classifier_dropout;
  json id2l = json::object();
  json l2id = json::object();
  for (size_t i = 0; i < id2label.size(); ++i) {
    id2l[std::to_string(i)] = id2label[i];
    l2id[id2label[i]] = i;
  }
  j["id2label"] = id2l;
  j["label2id"] = l2id;
  if (problem_type != ProblemType::kUnset)
    j["problem_type"] = problem_type_name(problem_type);
  j["torch_dtype"] = torch_dtype;
  return j;
}

}  // namespace peftcpp::models
