#include "data/tokenizer/model_files.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "data/tokenizer/gguf_tokenizer.h"
#include "models/gguf/gguf_file.h"

namespace peftcpp::data {

namespace fs = std::filesystem;

namespace {

nlohmann::json read_json_or_null(const fs::path& path) {
  std::ifstream in(path);
  if (!in)
    return nullptr;
  try {
    nlohmann::json j;
    in >> j;
    return j;
  } catch (const nlohmann::json::exception&) {
    return nullptr;
  }
}

// A special token in tokenizer_config.json: "<s>" or {"content": "<s>", ...}.
std::optional<std::string> token_string(const nlohmann::json& config,
                                        const char* key) {
  const auto it = config.find(key);
  if (it == config.end())
    return std::nullopt;
  if (it->is_string())
    return it->get<std::string>();
  if (it->is_object() && it->contains("content") &&
      (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return std::nullopt;
}

// tokenizer_config.json's chat_template is a string, or a list of
// {"name", "template"} of which "default" is the one apply_chat_template
// uses; transformers 5 also saves it as chat_template.jinja.
std::optional<std::string> folder_chat_template(const fs::path& dir,
                                                const nlohmann::json& config) {
  const fs::path jinja = dir / "chat_template.jinja";
  if (fs::is_regular_file(jinja)) {
    std::ifstream in(jinja, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }
  const auto it =
      config.is_object() ? config.find("chat_template") : config.end();
  if (config.is_object() && it != config.end()) {
    if (it->is_string())
      return it->get<std::string>();
    if (it->is_array()) {
      for (const auto& entry : *it) {
        if (entry.value("name", "") == "default" && entry.contains("template"))
          return entry["template"].get<std::string>();
      }
    }
  }
  return std::nullopt;
}

void add_unique(std::vector<int64_t>& ids, std::optional<int64_t> id) {
  if (id.has_value() && std::find(ids.begin(), ids.end(), *id) == ids.end())
    ids.push_back(*id);
}

}  // namespace

bool is_gguf_path(const fs::path& path) {
  return path.extension() == ".gguf";
}

Tokenizer load_model_tokenizer(const fs::path& model) {
  if (is_gguf_path(model))
    return tokenizer_from_gguf(gguf::GgufFile::open(model));
  return Tokenizer::from_pretrained(model);
}

ChatFormat read_chat_format(const fs::path& model, const Tokenizer& tokenizer,
                            const std::vector<int64_t>& config_eos,
                            std::optional<int64_t> config_pad) {
  ChatFormat format;
  std::optional<int64_t> eos_id;
  std::optional<int64_t> bos_id;
  std::optional<int64_t> pad_id = config_pad;
  if (is_gguf_path(model)) {
    const gguf::GgufFile file = gguf::GgufFile::open(model);
    const GgufTokenizerInfo info =
        gguf_tokenizer_info(file.metadata(), model.string());
    format.chat_template = info.chat_template;
    eos_id = info.eos_id;
    bos_id = info.bos_id;
    if (info.pad_id.has_value())
      pad_id = info.pad_id;
  } else {
    const nlohmann::json config =
        read_json_or_null(model / "tokenizer_config.json");
    format.chat_template = folder_chat_template(model, config);
    if (config.is_object()) {
      if (auto eos = token_string(config, "eos_token"))
        eos_id = tokenizer.token_to_id(*eos);
      if (auto bos = token_string(config, "bos_token"))
        bos_id = tokenizer.token_to_id(*bos);
    }
    if (tokenizer.pad_token().has_value())
      pad_id = tokenizer.pad_token()->id;
  }
  format.bos_id = bos_id;
  format.eos_id = eos_id;
  format.pad_id = pad_id;
  if (bos_id.has_value())
    format.bos_token = tokenizer.id_to_token(*bos_id).value_or("");
  if (eos_id.has_value())
    format.eos_token = tokenizer.id_to_token(*eos_id).value_or("");
  format.stop_token_ids = config_eos;
  add_unique(format.stop_token_ids, eos_id);
  format.pad_token_id =
      pad_id.has_value()
          ? pad_id
          : (format.stop_token_ids.empty()
                 ? std::nullopt
                 : std::optional<int64_t>(format.stop_token_ids.front()));
  return format;
}

}  // namespace peftcpp::data
