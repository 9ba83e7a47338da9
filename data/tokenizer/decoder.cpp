#include "data/tokenizer/decoder.h"

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <utility>

#include "common/error.h"
#include "data/tokenizer/json_util.h"

namespace peftcpp::data {

namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  size_t at = 0;
  while ((at = s.find(from, at)) != std::string::npos) {
    s.replace(at, from.size(), to);
    at += to.size();
  }
}

// tokenizers' decoders::wordpiece::cleanup, same replacements, same order.
void cleanup(std::string& s) {
  static constexpr std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},   {" ?", "?"},     {" !", "!"},     {" ,", ","},
      {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},   {" do not", " don't"},
      {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
  };
  for (const auto& [from, to] : kRules)
    replace_all(s, from, to);
}

}  // namespace

WordPieceDecoder::WordPieceDecoder(std::string prefix, bool cleanup)
    : prefix_(std::move(prefix)), cleanup_(cleanup) {}

std::string WordPieceDecoder::decode(
    const std::vector<std::string>& tokens) const {
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string piece;
    const std::string& t = tokens[i];
    if (i != 0 && t.compare(0, prefix_.size(), prefix_) == 0) {
      piece = t.substr(prefix_.size());
    } else if (i != 0) {
      piece = " " + t;
    } else {
      piece = t;
    }
    // HF cleans each token on its own, so a rule never spans two tokens.
    if (cleanup_)
      cleanup(piece);
    out += piece;
  }
  return out;
}

std::unique_ptr<Decoder> decoder_from_json(const nlohmann::json& j,
                                           std::string_view where) {
  if (j.is_null())
    return nullptr;
  const std::string type = json_type(j, where);
  if (type == "WordPiece") {
    return std::make_unique<WordPieceDecoder>(
        json_get_or<std::string>(j, "prefix", "##", where),
        json_get_or(j, "cleanup", true, where));
  }
  throw std::runtime_error(error_message(
      where, "a decoder of a supported type (WordPiece) or null",
      "type \"" + type + "\"", "other decoders are not implemented yet"));
}

}  // namespace peftcpp::data
