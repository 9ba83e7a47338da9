#include "data/tokenizer/normalizer.h"

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <vector>

#include "common/error.h"
#include "data/tokenizer/json_util.h"
#include "data/tokenizer/unicode.h"

namespace peftcpp::data {

namespace {

bool is_ascii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80)
      return false;
  }
  return true;
}

// clean_text's test (HF bert.rs): U+0000, U+FFFD and is_other() go, except
// \t \n \r, which are whitespace to BERT.
bool removed_by_clean_text(char32_t cp) {
  if (cp == 0x09 || cp == 0x0A || cp == 0x0D)
    return false;
  return cp == 0 || cp == 0xFFFD || unicode::is_other(cp);
}

}  // namespace

BertNormalizer::BertNormalizer(BertNormalizerOptions options)
    : options_(options),
      strip_accents_(options.strip_accents.value_or(options.lowercase)) {}

void BertNormalizer::normalize(std::string& text) const {
  if (is_ascii(text)) {
    // ASCII has no CJK, no marks and no decompositions, so only cleaning
    // and lowercasing can change it; do both in one pass, in place.
    size_t w = 0;
    for (char ch : text) {
      auto c = static_cast<unsigned char>(ch);
      if (options_.clean_text) {
        if (c == '\t' || c == '\n' || c == '\r') {
          c = ' ';
        } else if (c < 0x20 || c == 0x7F) {
          continue;  // controls, 0x0B and 0x0C included (Cc before space)
        }
      }
      if (options_.lowercase && c >= 'A' && c <= 'Z')
        c += 32;
      text[w++] = static_cast<char>(c);
    }
    text.resize(w);
    return;
  }

  std::vector<char32_t> cps;
  cps.reserve(text.size() + 8);
  for (size_t i = 0; i < text.size();) {
    char32_t cp = unicode::next_code_point(text, i);
    if (options_.clean_text) {
      if (removed_by_clean_text(cp))
        continue;
      if (unicode::is_whitespace(cp))
        cp = U' ';
    }
    if (options_.handle_chinese_chars && unicode::is_chinese_char(cp)) {
      cps.push_back(U' ');
      cps.push_back(cp);
      cps.push_back(U' ');
    } else {
      cps.push_back(cp);
    }
  }
  if (strip_accents_) {
    cps = unicode::nfd(cps);
    size_t w = 0;
    for (char32_t cp : cps) {
      if (!unicode::is_nonspacing_mark(cp))
        cps[w++] = cp;
    }
    cps.resize(w);
  }
  if (options_.lowercase) {
    std::vector<char32_t> lower;
    lower.reserve(cps.size() + 2);
    for (char32_t cp : cps)
      unicode::append_lowercase(lower, cp);
    cps.swap(lower);
  }
  text = unicode::encode_utf8(cps);
}

std::unique_ptr<Normalizer> normalizer_from_json(const nlohmann::json& j,
                                                 std::string_view where) {
  if (j.is_null())
    return nullptr;
  const std::string type = json_type(j, where);
  if (type == "BertNormalizer") {
    BertNormalizerOptions o;
    o.clean_text = json_get_or(j, "clean_text", true, where);
    o.handle_chinese_chars =
        json_get_or(j, "handle_chinese_chars", true, where);
    o.lowercase = json_get_or(j, "lowercase", true, where);
    if (j.contains("strip_accents") && !j.at("strip_accents").is_null()) {
      o.strip_accents = json_get_or(j, "strip_accents", false, where);
    }
    return std::make_unique<BertNormalizer>(o);
  }
  throw std::runtime_error(error_message(
      where, "a normalizer of a supported type (BertNormalizer) or null",
      "type \"" + type + "\"", "other normalizers are not implemented yet"));
}

}  // namespace peftcpp::data
