#include "data/tokenizer/pre_tokenizer.h"

#include <nlohmann/json.hpp>

#include <stdexcept>

#include "common/error.h"
#include "data/tokenizer/json_util.h"
#include "data/tokenizer/unicode.h"

namespace peftcpp::data {

namespace {

// Byte classes for the ASCII fast path: 0 word, 1 space, 2 punctuation.
struct AsciiClasses {
  unsigned char of[128] = {};
  AsciiClasses() {
    for (char32_t c = 0; c < 128; ++c) {
      of[c] = unicode::is_whitespace(c)    ? 1
              : unicode::is_punctuation(c) ? 2
                                           : 0;
    }
  }
};

}  // namespace

void BertPreTokenizer::pre_tokenize(std::string_view text,
                                    PreTokenized& out) const {
  static const AsciiClasses kAscii;
  // HF runs two splits (whitespace removed, then punctuation isolated);
  // one scan that ends a word at either gives the same words.
  size_t word_start = 0;
  bool in_word = false;
  for (size_t i = 0; i < text.size();) {
    const size_t at = i;
    const auto b = static_cast<unsigned char>(text[i]);
    int cls;
    if (b < 0x80) {
      cls = kAscii.of[b];
      ++i;
    } else {
      const char32_t cp = unicode::next_code_point(text, i);
      cls = unicode::is_whitespace(cp)    ? 1
            : unicode::is_punctuation(cp) ? 2
                                          : 0;
    }
    if (cls == 0) {
      if (!in_word) {
        word_start = at;
        in_word = true;
      }
      continue;
    }
    if (in_word) {
      out.words.push_back(text.substr(word_start, at - word_start));
      in_word = false;
    }
    if (cls == 2)
      out.words.push_back(text.substr(at, i - at));
  }
  if (in_word)
    out.words.push_back(text.substr(word_start));
}

std::unique_ptr<PreTokenizer> pre_tokenizer_from_json(const nlohmann::json& j,
                                                      std::string_view where) {
  if (j.is_null())
    return nullptr;
  const std::string type = json_type(j, where);
  if (type == "BertPreTokenizer")
    return std::make_unique<BertPreTokenizer>();
  throw std::runtime_error(error_message(
      where, "a pre-tokenizer of a supported type (BertPreTokenizer) or null",
      "type \"" + type + "\"", "other pre-tokenizers are not implemented yet"));
}

}  // namespace peftcpp::data
