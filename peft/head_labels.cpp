#include "peft/head_labels.h"

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/text_file.h"

namespace peftcpp::peft {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
constexpr const char* kHeadFile = "head_config.json";

std::string architecture_of(const models::EncoderConfig& c) {
  for (const auto& a : c.architectures) {
    if (a.find("ForSequenceClassification") != std::string::npos)
      return a;
  }
  return c.model_type == "roberta" ? "RobertaForSequenceClassification"
                                   : "BertForSequenceClassification";
}
}  // namespace

void write_adapter_head(const fs::path& dir,
                        const models::EncoderConfig& config) {
  json id2label = json::object();
  for (size_t i = 0; i < config.id2label.size(); ++i)
    id2label[std::to_string(i)] = config.id2label[i];
  json j{{"architecture", architecture_of(config)}, {"id2label", id2label}};
  if (config.problem_type != models::ProblemType::kUnset)
    j["problem_type"] = models::problem_type_name(config.problem_type);
  write_file_atomically(dir / kHeadFile,
                        [&](std::ostream& o) { o << j.dump(2) << "\n"; });
}

std::optional<AdapterHead> read_adapter_head(const fs::path& dir) {
  const fs::path path = dir / kHeadFile;
  if (!fs::exists(path))
    return std::nullopt;
  const std::string where = "read_adapter_head(" + path.string() + ")";
  const json j = json::parse(read_text_file(path, where, ""), nullptr, false);
  if (!j.is_object() || !j.contains("id2label") || !j["id2label"].is_object()) {
    throw std::runtime_error(error_message(
        where, "a JSON object with an \"id2label\" object", "something else",
        "delete the file to load the adapter without its labels"));
  }
  AdapterHead head;
  head.architecture = j.value("architecture", "");
  const json& labels = j["id2label"];
  head.id2label.resize(labels.size());
  for (const auto& [key, value] : labels.items()) {
    size_t id = labels.size();
    try {
      id = std::stoul(key);
    } catch (const std::exception&) {
    }
    if (id >= labels.size() || !value.is_string()) {
      throw std::runtime_error(error_message(
          where,
          "id2label keys 0.." + std::to_string(labels.size() - 1) +
              " with string labels",
          "\"" + key + "\": " + value.dump()));
    }
    head.id2label[id] = value.get<std::string>();
  }
  if (j.contains("problem_type") && j["problem_type"].is_string())
    head.problem_type =
        models::parse_problem_type(j["problem_type"].get<std::string>());
  return head;
}

void apply_adapter_head(const AdapterHead& head,
                        models::LoadEncoderOptions& options) {
  options.head = models::EncoderHead::kSequenceClassification;
  options.id2label = head.id2label;
  options.problem_type = head.problem_type;
}

}  // namespace peftcpp::peft
