#include "data/tokenizer/model.h"

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <utility>

#include "common/error.h"
#include "data/tokenizer/bpe.h"
#include "data/tokenizer/json_util.h"
#include "data/tokenizer/wordpiece.h"

namespace peftcpp::data {

namespace {

std::unique_ptr<Model> wordpiece_from_json(const nlohmann::json& j,
                                           std::string_view where) {
  WordPieceOptions o;
  o.unk_token = json_get_or<std::string>(j, "unk_token", o.unk_token, where);
  o.continuing_subword_prefix = json_get_or<std::string>(
      j, "continuing_subword_prefix", o.continuing_subword_prefix, where);
  o.max_input_chars_per_word = json_get_or<size_t>(
      j, "max_input_chars_per_word", o.max_input_chars_per_word, where);
  const auto vocab_it = j.find("vocab");
  if (vocab_it == j.end() || !vocab_it->is_object()) {
    throw std::runtime_error(
        error_message(json_path(where, "vocab"), "an object of token -> id",
                      vocab_it == j.end() ? "none" : vocab_it->type_name()));
  }
  std::vector<std::pair<std::string, int64_t>> vocab;
  vocab.reserve(vocab_it->size());
  for (const auto& [token, id] : vocab_it->items()) {
    if (!id.is_number_unsigned()) {
      throw std::runtime_error(
          error_message(json_path(where, "vocab"), "a non-negative integer id",
                        "\"" + token + "\": " + id.dump()));
    }
    vocab.emplace_back(token, id.get<int64_t>());
  }
  return std::make_unique<WordPiece>(vocab, std::move(o));
}

}  // namespace

std::unique_ptr<Model> model_from_json(const nlohmann::json& j,
                                       std::string_view where) {
  if (!j.is_object()) {
    throw std::runtime_error(error_message(
        where, "a model object", "the JSON value " + j.dump().substr(0, 80)));
  }
  // Old files leave "type" out; serde then recognises WordPiece by its
  // fields, and so do we.
  std::string type;
  if (j.contains("type")) {
    type = json_type(j, where);
  } else if (j.contains("max_input_chars_per_word")) {
    type = "WordPiece";
  } else if (j.contains("merges")) {
    type = "BPE";
  }
  if (type == "WordPiece")
    return wordpiece_from_json(j, where);
  if (type == "BPE")
    return Bpe::from_json(j, where);
  throw std::runtime_error(
      error_message(where, "a model of a supported type (WordPiece, BPE)",
                    type.empty() ? std::string("a model without a type")
                                 : "type \"" + type + "\"",
                    "Unigram and WordLevel models are not implemented"));
}

}  // namespace peftcpp::data
