// Tokenizer::from_file / from_vocab_file / from_pretrained: building the
// pipeline from tokenizer.json, or from vocab.txt the way transformers'
// BertTokenizer does; from_pretrained also reads SentencePiece folders
// (tokenizer.model, see sentencepiece_model.cpp).

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "common/error.h"
#include "data/tokenizer/json_util.h"
#include "data/tokenizer/tokenizer.h"
#include "data/tokenizer/wordpiece.h"

namespace peftcpp::data {

namespace fs = std::filesystem;

namespace {

nlohmann::json read_json(const fs::path& path, std::string_view where) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw std::runtime_error(error_message(where, "an existing file",
                                           path.string() + " (no such file)"));
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  if (!in) {
    throw std::runtime_error(
        error_message(where, "a readable file", path.string()));
  }
  try {
    return nlohmann::json::parse(buf.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw std::runtime_error(
        error_message(where, "valid JSON in " + path.string(), e.what(),
                      "the file is truncated or not a tokenizer file"));
  }
}

AddedToken added_token_from_json(const nlohmann::json& j,
                                 const std::string& where) {
  AddedToken t;
  t.content = json_require<std::string>(j, "content", where, "a string");
  t.special = json_get_or(j, "special", false, where);
  t.single_word = json_get_or(j, "single_word", false, where);
  t.lstrip = json_get_or(j, "lstrip", false, where);
  t.rstrip = json_get_or(j, "rstrip", false, where);
  // Missing "normalized" means "not special", as for a Python AddedToken.
  t.normalized = json_get_or(j, "normalized", !t.special, where);
  return t;
}

// A special token in tokenizer_config.json: "[PAD]" or {"content": ...}.
std::optional<std::string> config_token(const nlohmann::json& config,
                                        const char* key) {
  const auto it = config.find(key);
  if (it == config.end())
    return std::nullopt;
  if (it->is_string())
    return it->get<std::string>();
  if (it->is_object() && it->contains("content") &&
      it->at("content").is_string()) {
    return it->at("content").get<std::string>();
  }
  return std::nullopt;
}

// transformers writes 1e30 ("VERY_LARGE_INTEGER") when there is no limit.
std::optional<size_t> config_max_length(const nlohmann::json& config) {
  const auto it = config.find("model_max_length");
  if (it == config.end())
    return std::nullopt;
  if (it->is_number_unsigned())
    return it->get<size_t>();
  if (it->is_number_float() && it->get<double>() >= 0 &&
      it->get<double>() < 1e15) {
    return static_cast<size_t>(it->get<double>());
  }
  return std::nullopt;
}

void apply_pad_token(Tokenizer& t, const nlohmann::json& config) {
  const auto pad = config_token(config, "pad_token");
  if (!pad)
    return;
  if (auto id = t.token_to_id(*pad)) {
    t.set_pad_token(
        PadToken{*id, config.value("pad_token_type_id", int64_t{0}), *pad});
  }
}

// Further added tokens saved by transformers ("added_tokens_decoder").
void add_config_added_tokens(Tokenizer& t, const nlohmann::json& config,
                             const std::string& where) {
  const auto decoder = config.find("added_tokens_decoder");
  if (decoder == config.end() || !decoder->is_object())
    return;
  // Keys are ids as strings; transformers adds them in numeric order.
  std::map<long long, AddedToken> by_id;
  for (const auto& [id, value] : decoder->items()) {
    const std::string at = where + ": added_tokens_decoder." + id;
    try {
      by_id[std::stoll(id)] = added_token_from_json(value, at);
    } catch (const std::logic_error&) {  // stoll: not a number
      throw std::runtime_error(error_message(at, "an integer id key", id));
    }
  }
  std::vector<AddedToken> extra;
  for (auto& entry : by_id)
    extra.push_back(std::move(entry.second));
  t.add_tokens(extra);
}

// tokenizer_config.json's LlamaTokenizer arguments. A special token set to
// null is none; an absent one keeps LlamaTokenizer's default.
SentencePieceOptions sentencepiece_options(const nlohmann::json& config,
                                           const std::string& where) {
  const auto tokenizer_class = config.find("tokenizer_class");
  if (tokenizer_class != config.end() && tokenizer_class->is_string() &&
      *tokenizer_class != "LlamaTokenizer" &&
      *tokenizer_class != "LlamaTokenizerFast") {
    throw std::runtime_error(error_message(
        where, "tokenizer_class LlamaTokenizer beside tokenizer.model",
        tokenizer_class->get<std::string>(),
        "only LLaMA-style SentencePiece folders are supported; a "
        "tokenizer.json would be read instead"));
  }
  SentencePieceOptions o;
  o.add_bos_token = json_get_or(config, "add_bos_token", false, where);
  o.add_eos_token = json_get_or(config, "add_eos_token", false, where);
  o.legacy = json_get_or(config, "legacy", false, where);
  o.add_prefix_space = json_get_or(config, "add_prefix_space", true, where);
  for (auto [key, field] : {std::pair{"bos_token", &o.bos_token},
                            {"eos_token", &o.eos_token},
                            {"unk_token", &o.unk_token},
                            {"pad_token", &o.pad_token}}) {
    if (config.contains(key))
      *field = config_token(config, key);
  }
  o.model_max_length = config_max_length(config);
  return o;
}

}  // namespace

Tokenizer Tokenizer::from_file(const fs::path& path) {
  return from_json(read_json(path, "Tokenizer::from_file"), path.string());
}

Tokenizer Tokenizer::from_json(const nlohmann::json& j,
                               std::string_view where) {
  if (!j.is_object()) {
    throw std::runtime_error(
        error_message("Tokenizer::from_json",
                      "a JSON object in " + std::string(where), j.type_name()));
  }
  const std::string file = std::string(where) + ": ";
  const auto part = [&](const char* key) {
    return j.contains(key) ? j.at(key) : nlohmann::json(nullptr);
  };
  if (!j.contains("model")) {
    throw std::runtime_error(
        error_message("Tokenizer::from_json",
                      "a \"model\" in " + std::string(where), "none"));
  }
  Tokenizer t(
      normalizer_from_json(part("normalizer"), file + "normalizer"),
      pre_tokenizer_from_json(part("pre_tokenizer"), file + "pre_tokenizer"),
      model_from_json(j.at("model"), file + "model"),
      post_processor_from_json(part("post_processor"), file + "post_processor"),
      decoder_from_json(part("decoder"), file + "decoder"));

  // The ids written beside added tokens are informational: HF re-derives
  // them through add_tokens, and so do we.
  const nlohmann::json added = part("added_tokens");
  if (!added.is_null()) {
    if (!added.is_array()) {
      throw std::runtime_error(
          error_message(file + "added_tokens", "an array", added.type_name()));
    }
    std::vector<AddedToken> tokens;
    for (size_t i = 0; i < added.size(); ++i) {
      tokens.push_back(added_token_from_json(
          added[i], file + "added_tokens[" + std::to_string(i) + "]"));
    }
    t.add_tokens(tokens);
  }

  // Padding comes from the file's padding section, else [PAD] if present.
  const nlohmann::json padding = part("padding");
  if (padding.is_object()) {
    const std::string where = file + "padding";
    t.pad_ = PadToken{
        json_get_or<int64_t>(padding, "pad_id", 0, where),
        json_get_or<int64_t>(padding, "pad_type_id", 0, where),
        json_get_or<std::string>(padding, "pad_token", "[PAD]", where)};
  } else if (auto id = t.token_to_id("[PAD]")) {
    t.pad_ = PadToken{*id, 0, "[PAD]"};
  }
  return t;
}

Tokenizer Tokenizer::from_vocab_file(const fs::path& vocab_txt,
                                     const BertOptions& o) {
  const auto vocab = WordPiece::read_vocab_file(vocab_txt);
  bool has_unk = false;
  for (const auto& entry : vocab)
    has_unk |= entry.first == o.unk_token;
  if (!has_unk) {
    throw std::out_of_range(error_message(
        "Tokenizer::from_vocab_file",
        "unk_token \"" + o.unk_token + "\" as a line of " + vocab_txt.string(),
        "no such line among " + std::to_string(vocab.size()),
        "pass the vocabulary's unknown token in BertOptions::unk_token"));
  }
  WordPieceOptions wp;
  wp.unk_token = o.unk_token;
  BertNormalizerOptions norm;
  norm.handle_chinese_chars = o.tokenize_chinese_chars;
  norm.strip_accents = o.strip_accents;
  norm.lowercase = o.do_lower_case;
  Tokenizer t(std::make_unique<BertNormalizer>(norm),
              std::make_unique<BertPreTokenizer>(),
              std::make_unique<WordPiece>(vocab, wp), nullptr,
              std::make_unique<WordPieceDecoder>("##", true));

  // transformers registers its special tokens (in SPECIAL_TOKENS_ATTRIBUTES
  // order) as special, non-normalized added tokens.
  std::vector<AddedToken> specials;
  for (const std::string* s : {&o.unk_token, &o.sep_token, &o.pad_token,
                               &o.cls_token, &o.mask_token}) {
    AddedToken a;
    a.content = *s;
    a.special = true;
    a.normalized = false;
    specials.push_back(a);
  }
  t.add_tokens(specials);

  const int64_t cls = *t.token_to_id(o.cls_token);
  const int64_t sep = *t.token_to_id(o.sep_token);
  t.post_processor_ = bert_processing({o.sep_token, sep}, {o.cls_token, cls});
  t.pad_ = PadToken{*t.token_to_id(o.pad_token), 0, o.pad_token};
  t.model_max_length_ = o.model_max_length;
  return t;
}

Tokenizer Tokenizer::from_pretrained(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw std::runtime_error(error_message("Tokenizer::from_pretrained",
                                           "a model folder",
                                           dir.string() + " (no such folder)"));
  }
  nlohmann::json config = nlohmann::json::object();
  if (fs::is_regular_file(dir / "tokenizer_config.json", ec)) {
    config =
        read_json(dir / "tokenizer_config.json", "Tokenizer::from_pretrained");
  }
  // special_tokens_map.json fills the tokens tokenizer_config.json lacks.
  if (fs::is_regular_file(dir / "special_tokens_map.json", ec)) {
    const auto map = read_json(dir / "special_tokens_map.json",
                               "Tokenizer::from_pretrained");
    if (map.is_object()) {
      for (const auto& [key, value] : map.items()) {
        if (!config.contains(key))
          config[key] = value;
      }
    }
  }
  if (!config.is_object())
    config = nlohmann::json::object();

  if (fs::is_regular_file(dir / "tokenizer.json", ec)) {
    Tokenizer t = from_file(dir / "tokenizer.json");
    t.model_max_length_ = config_max_length(config);
    apply_pad_token(t, config);
    return t;
  }
  const std::string where = (dir / "tokenizer_config.json").string();
  if (fs::is_regular_file(dir / "tokenizer.model", ec)) {
    Tokenizer t = from_sentencepiece(dir / "tokenizer.model",
                                     sentencepiece_options(config, where));
    add_config_added_tokens(t, config, where);
    return t;
  }
  if (!fs::is_regular_file(dir / "vocab.txt", ec)) {
    throw std::runtime_error(error_message(
        "Tokenizer::from_pretrained",
        "tokenizer.json or vocab.txt (or a SentencePiece tokenizer.model) in " +
            dir.string(),
        "none of them", "point at the folder that holds the tokenizer files"));
  }
  BertOptions o;
  o.do_lower_case = json_get_or(config, "do_lower_case", true, where);
  o.tokenize_chinese_chars =
      json_get_or(config, "tokenize_chinese_chars", true, where);
  if (config.contains("strip_accents") && !config["strip_accents"].is_null()) {
    o.strip_accents = json_get_or(config, "strip_accents", false, where);
  }
  for (auto [key, field] : {std::pair{"unk_token", &o.unk_token},
                            {"sep_token", &o.sep_token},
                            {"pad_token", &o.pad_token},
                            {"cls_token", &o.cls_token},
                            {"mask_token", &o.mask_token}}) {
    if (auto token = config_token(config, key))
      *field = *token;
  }
  o.model_max_length = config_max_length(config);
  Tokenizer t = from_vocab_file(dir / "vocab.txt", o);

  add_config_added_tokens(t, config, where);
  return t;
}

}  // namespace peftcpp::data
