#include "data/tokenizer/gguf_tokenizer.h"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/error.h"
#include "data/tokenizer/byte_level.h"
#include "data/tokenizer/sentencepiece_model.h"
#include "data/tokenizer/unicode.h"

namespace peftcpp::data {

namespace {

using nlohmann::json;

// The split patterns transformers' GGUF converter knows, by pre type
// (GGUF_PRE_TOKENIZER_SPLITS in integrations/gguf/gguf_tokenizer_mapping.py;
// Qwen2's from its tokenizer). The patterns are data that must match
// exactly.
constexpr const char* kLlama3Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

const std::unordered_map<std::string, const char*>& split_patterns() {
  static const std::unordered_map<std::string, const char*> patterns = {
      {"llama3", kLlama3Split},    {"llama-v3", kLlama3Split},
      {"llama-bpe", kLlama3Split}, {"falcon3", kLlama3Split},
      {"smaug-bpe", kLlama3Split}, {"dbrx", kLlama3Split},
      {"qwen2", kQwen2Split},      {"deepseek-r1-qwen", kQwen2Split},
      {"megrez", kQwen2Split},
  };
  return patterns;
}

// Pre types for which transformers keeps GPT2Tokenizer's ByteLevel
// pre-tokenizer with GPT-2's own pattern.
const std::unordered_set<std::string>& gpt2_pattern_pres() {
  static const std::unordered_set<std::string> pres = {"gpt-2", "smollm"};
  return pres;
}

std::string known_pres() {
  std::vector<std::string> names(gpt2_pattern_pres().begin(),
                                 gpt2_pattern_pres().end());
  for (const auto& entry : split_patterns())
    names.push_back(entry.first);
  std::sort(names.begin(), names.end());
  return join_names(names, ", ", 20);
}

const json* find(const json& metadata, const char* key) {
  const auto it = metadata.find(key);
  return it == metadata.end() ? nullptr : &*it;
}

template <typename T>
std::vector<T> array_of(const json& metadata, const char* key,
                        std::string_view where, const char* expected) {
  const json* v = find(metadata, key);
  if (!v || !v->is_array()) {
    throw std::runtime_error(
        error_message(std::string(where) + ": " + key, expected,
                      v ? std::string("a ") + v->type_name() : "none",
                      "a GGUF written by llama.cpp's converters has it"));
  }
  try {
    return v->get<std::vector<T>>();
  } catch (const json::exception&) {
    throw std::runtime_error(error_message(std::string(where) + ": " + key,
                                           expected, "other element types"));
  }
}

std::optional<int64_t> optional_int(const json& metadata, const char* key,
                                    std::string_view where) {
  const json* v = find(metadata, key);
  if (!v)
    return std::nullopt;
  if (!v->is_number_integer()) {
    throw std::runtime_error(error_message(std::string(where) + ": " + key,
                                           "an integer", v->dump()));
  }
  return v->get<int64_t>();
}

// GPT-2's byte alphabet: a token made only of these is already byte-level.
bool in_byte_alphabet(std::string_view token) {
  static const std::unordered_set<char32_t> alphabet = [] {
    std::unordered_set<char32_t> out;
    for (int b = 0; b < 256; ++b) {
      const std::string_view c = byte_level_char(static_cast<unsigned char>(b));
      size_t i = 0;
      out.insert(unicode::next_code_point(c, i));
    }
    return out;
  }();
  for (size_t i = 0; i < token.size();) {
    if (!alphabet.count(unicode::next_code_point(token, i)))
      return false;
  }
  return true;
}

json added_token(int64_t id, const std::string& content, bool special) {
  return json{{"id", id},          {"content", content}, {"single_word", false},
              {"lstrip", false},   {"rstrip", false},    {"normalized", false},
              {"special", special}};
}

// transformers' byte_level_tokenizer + add_gguf_special_tokens +
// set_split_regex, with GPT2Tokenizer's BPE/ByteLevel settings.
json byte_level_json(const json& metadata, const GgufTokenizerInfo& info,
                     std::string_view where) {
  const std::string pre = info.pre;
  const auto split = split_patterns().find(pre);
  if (split == split_patterns().end() && !gpt2_pattern_pres().count(pre)) {
    throw std::runtime_error(error_message(
        std::string(where) + ": tokenizer.ggml.pre",
        "a pre-tokenizer type this library knows (" + known_pres() + ")",
        "\"" + pre + "\"",
        "its split pattern decides the tokens; add it to gguf_tokenizer.cpp "
        "once transformers has it"));
  }
  const auto tokens = array_of<std::string>(metadata, "tokenizer.ggml.tokens",
                                            where, "an array of strings");
  const json* types_value = find(metadata, "tokenizer.ggml.token_type");
  const auto types =
      types_value ? array_of<int64_t>(metadata, "tokenizer.ggml.token_type",
                                      where, "an array of integers")
                  : std::vector<int64_t>();
  const auto merge_lines = array_of<std::string>(
      metadata, "tokenizer.ggml.merges", where, "an array of strings");

  json vocab = json::object();
  std::vector<std::string> spelled(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    spelled[i] =
        in_byte_alphabet(tokens[i]) ? tokens[i] : to_byte_level(tokens[i]);
    vocab[spelled[i]] = i;  // a repeated token keeps its last id
  }
  json merges = json::array();
  for (size_t i = 0; i < merge_lines.size(); ++i) {
    const std::string& line = merge_lines[i];
    const size_t space = line.find(' ');
    if (space == std::string::npos || line.find(' ', space + 1) != line.npos) {
      throw std::runtime_error(error_message(
          std::string(where) + ": tokenizer.ggml.merges[" + std::to_string(i) +
              "]",
          "two tokens separated by one space", "\"" + line + "\""));
    }
    merges.push_back(
        json::array({line.substr(0, space), line.substr(space + 1)}));
  }

  // The special tokens (by their text in the file), then control tokens in
  // the byte alphabet (special; others are llama.cpp mislabels transformers
  // skips), then user-defined tokens of the vocabulary (not special).
  json added = json::array();
  std::unordered_set<std::string> seen;
  size_t next_id = tokens.size();
  const auto add = [&](const std::string& content, bool special) {
    if (!seen.insert(content).second)
      return;
    const int64_t id = vocab.contains(content)
                           ? vocab[content].get<int64_t>()
                           : static_cast<int64_t>(next_id++);
    added.push_back(added_token(id, content, special));
  };
  for (const auto& id : {info.bos_id, info.eos_id, info.unk_id, info.pad_id}) {
    if (id)
      add(tokens.at(static_cast<size_t>(*id)), /*special=*/true);
  }
  for (size_t i = 0; i < types.size() && i < tokens.size(); ++i) {
    if (types[i] == static_cast<int64_t>(PieceType::kControl) &&
        in_byte_alphabet(tokens[i])) {
      add(tokens[i], /*special=*/true);
    }
  }
  for (size_t i = 0; i < types.size() && i < tokens.size(); ++i) {
    if (types[i] == static_cast<int64_t>(PieceType::kUserDefined) &&
        vocab.contains(tokens[i])) {
      add(tokens[i], /*special=*/false);
    }
  }
  const auto template_token = [&](const std::optional<int64_t>& id, bool use) {
    std::optional<TemplateToken> t;
    if (use && id) {
      const std::string& token = tokens.at(static_cast<size_t>(*id));
      t = TemplateToken{
          token, vocab.contains(token) ? vocab[token].get<int64_t>() : *id};
    }
    return t;
  };

  json byte_level = {{"type", "ByteLevel"},
                     {"add_prefix_space", false},
                     {"trim_offsets", true},
                     {"use_regex", true}};
  json pre_tokenizer = byte_level;
  if (split != split_patterns().end()) {
    json no_regex = byte_level;
    no_regex["use_regex"] = false;
    pre_tokenizer = {
        {"type", "Sequence"},
        {"pretokenizers", json::array({{{"type", "Split"},
                                        {"pattern", {{"Regex", split->second}}},
                                        {"behavior", "Isolated"},
                                        {"invert", false}},
                                       no_regex})}};
  }
  json decoder = byte_level;
  decoder["add_prefix_space"] = true;
  return json{
      {"version", "1.0"},
      {"added_tokens", std::move(added)},
      {"normalizer", nullptr},
      {"pre_tokenizer", std::move(pre_tokenizer)},
      {"post_processor",
       bos_eos_template_json(template_token(info.bos_id, info.add_bos_token),
                             template_token(info.eos_id, info.add_eos_token))},
      {"decoder", std::move(decoder)},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", std::move(vocab)},
        {"merges", std::move(merges)}}}};
}

// transformers' sentencepiece_tokenizer (LlamaTokenizer with the file's
// merges or merges generated by score) + add_gguf_special_tokens.
json sentencepiece_json(const json& metadata, const GgufTokenizerInfo& info,
                        std::string_view where) {
  const json* arch = find(metadata, "general.architecture");
  if (arch && arch->is_string()) {
    const std::string a = arch->get<std::string>();
    // transformers builds these differently (Gemma respells space tokens
    // and ranks by position, Phi-3 prepends through a normalizer).
    if (a == "gemma" || a == "gemma2" || a == "gemma3" || a == "phi3") {
      throw std::runtime_error(error_message(
          std::string(where) + ": general.architecture",
          "an architecture whose SentencePiece vocabulary is LLaMA's",
          "\"" + a + "\"", "Gemma and Phi-3 vocabularies are not supported"));
    }
  }
  if (split_patterns().count(info.pre)) {
    throw std::runtime_error(error_message(
        std::string(where) + ": tokenizer.ggml.pre",
        "no byte-level split pattern for a SentencePiece vocabulary",
        "\"" + info.pre + "\""));
  }
  const auto tokens = array_of<std::string>(metadata, "tokenizer.ggml.tokens",
                                            where, "an array of strings");
  std::vector<SentencePiece> pieces(tokens.size());
  const json* scores_value = find(metadata, "tokenizer.ggml.scores");
  const json* types_value = find(metadata, "tokenizer.ggml.token_type");
  const auto scores = scores_value
                          ? array_of<float>(metadata, "tokenizer.ggml.scores",
                                            where, "an array of numbers")
                          : std::vector<float>();
  const auto types =
      types_value ? array_of<int64_t>(metadata, "tokenizer.ggml.token_type",
                                      where, "an array of integers")
                  : std::vector<int64_t>();
  for (size_t i = 0; i < tokens.size(); ++i) {
    pieces[i].piece = tokens[i];
    if (i < scores.size())
      pieces[i].score = scores[i];
    if (i < types.size())
      pieces[i].type = static_cast<PieceType>(types[i]);
  }
  std::vector<std::pair<std::string, std::string>> merges;
  if (find(metadata, "tokenizer.ggml.merges")) {
    for (const std::string& line : array_of<std::string>(
             metadata, "tokenizer.ggml.merges", where, "an array of strings")) {
      const size_t space = line.find(' ');
      merges.emplace_back(line.substr(0, space),
                          space == line.npos ? "" : line.substr(space + 1));
    }
  } else if (scores_value) {
    merges = generate_merges(pieces, MergeOrder::kByScore);
  } else {
    throw std::runtime_error(error_message(
        std::string(where), "tokenizer.ggml.scores or tokenizer.ggml.merges",
        "neither", "merges are ranked by the pieces' scores"));
  }
  SentencePieceOptions o;
  o.add_bos_token = info.add_bos_token;
  o.add_eos_token = info.add_eos_token;
  const auto token_of = [&](const std::optional<int64_t>& id) {
    return id ? std::optional<std::string>(tokens.at(static_cast<size_t>(*id)))
              : std::nullopt;
  };
  o.bos_token = token_of(info.bos_id);
  o.eos_token = token_of(info.eos_id);
  o.unk_token = token_of(info.unk_id);
  o.pad_token = token_of(info.pad_id);
  return llama_tokenizer_json(pieces, merges, o);
}

}  // namespace

GgufTokenizerInfo gguf_tokenizer_info(const nlohmann::json& metadata,
                                      std::string_view where) {
  GgufTokenizerInfo info;
  const json* model = find(metadata, "tokenizer.ggml.model");
  if (!model || !model->is_string()) {
    throw std::runtime_error(error_message(
        std::string(where) + ": tokenizer.ggml.model", "a string",
        model ? model->dump() : "none",
        "the file carries no tokenizer; load one from a model folder"));
  }
  info.model = model->get<std::string>();
  if (const json* pre = find(metadata, "tokenizer.ggml.pre");
      pre && pre->is_string()) {
    info.pre = pre->get<std::string>();
  }
  const size_t n_tokens = [&] {
    const json* tokens = find(metadata, "tokenizer.ggml.tokens");
    return tokens && tokens->is_array() ? tokens->size() : 0;
  }();
  const std::array<std::pair<const char*, std::optional<int64_t>*>, 4> ids = {
      {{"tokenizer.ggml.bos_token_id", &info.bos_id},
       {"tokenizer.ggml.eos_token_id", &info.eos_id},
       {"tokenizer.ggml.unknown_token_id", &info.unk_id},
       {"tokenizer.ggml.padding_token_id", &info.pad_id}}};
  for (const auto& [key, field] : ids) {
    *field = optional_int(metadata, key, where);
    if (*field && (**field < 0 || static_cast<size_t>(**field) >= n_tokens)) {
      throw std::runtime_error(error_message(
          std::string(where) + ": " + key,
          "an id below the " + std::to_string(n_tokens) + " tokens",
          std::to_string(**field)));
    }
  }
  // transformers: llama.cpp adds BOS to a SentencePiece vocabulary that
  // does not say otherwise.
  const bool default_bos = info.model == "llama";
  for (auto [key, field, fallback] :
       {std::tuple{"tokenizer.ggml.add_bos_token", &info.add_bos_token,
                   default_bos},
        std::tuple{"tokenizer.ggml.add_eos_token", &info.add_eos_token,
                   false}}) {
    const json* v = find(metadata, key);
    if (v && !v->is_boolean()) {
      throw std::runtime_error(error_message(std::string(where) + ": " + key,
                                             "a boolean", v->dump()));
    }
    *field = v ? v->get<bool>() : fallback;
  }
  if (const json* t = find(metadata, "tokenizer.chat_template");
      t && t->is_string()) {
    info.chat_template = t->get<std::string>();
  }
  return info;
}

nlohmann::json gguf_tokenizer_json(const nlohmann::json& metadata,
                                   std::string_view where) {
  const GgufTokenizerInfo info = gguf_tokenizer_info(metadata, where);
  if (info.model == "gpt2")
    return byte_level_json(metadata, info, where);
  if (info.model == "llama")
    return sentencepiece_json(metadata, info, where);
  throw std::runtime_error(error_message(
      std::string(where) + ": tokenizer.ggml.model",
      "gpt2 (byte-level BPE) or llama (SentencePiece)",
      "\"" + info.model + "\"",
      "other GGUF tokenizers (t5, bert, rwkv, ...) are not supported"));
}

Tokenizer Tokenizer::from_gguf_metadata(const nlohmann::json& metadata,
                                        std::string_view where) {
  const GgufTokenizerInfo info = gguf_tokenizer_info(metadata, where);
  Tokenizer t = from_json(gguf_tokenizer_json(metadata, where), where);
  if (info.pad_id)
    t.pad_ = PadToken{*info.pad_id, 0, *t.id_to_token(*info.pad_id)};
  return t;
}

Tokenizer tokenizer_from_gguf(const gguf::GgufFile& file) {
  return Tokenizer::from_gguf_metadata(file.metadata(), file.path().string());
}

}  // namespace peftcpp::data
