#include "data/tokenizer/normalizer.h"

#include <utf8proc.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
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

void UnicodeNormalizer::normalize(std::string& text) const {
  if (is_ascii(text))
    return;  // every form leaves ASCII unchanged
  if (form_ == Form::kNfd) {
    // The measured HF tables, as BertNormalizer's accent stripping uses.
    text = unicode::encode_utf8(unicode::nfd(unicode::decode_utf8(text)));
    return;
  }
  int options = UTF8PROC_STABLE;
  switch (form_) {
    case Form::kNfc:
      options |= UTF8PROC_COMPOSE;
      break;
    case Form::kNfkc:
      options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
      break;
    default:
      options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
      break;
  }
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                   static_cast<utf8proc_ssize_t>(text.size()), &out,
                   static_cast<utf8proc_option_t>(options));
  if (n < 0) {
    throw std::runtime_error(error_message("UnicodeNormalizer",
                                           "text utf8proc can normalize",
                                           utf8proc_errmsg(n)));
  }
  text.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
}

void LowercaseNormalizer::normalize(std::string& text) const {
  if (is_ascii(text)) {
    for (char& c : text) {
      if (c >= 'A' && c <= 'Z')
        c = static_cast<char>(c + 32);
    }
    return;
  }
  std::vector<char32_t> lower;
  for (char32_t cp : unicode::decode_utf8(text))
    unicode::append_lowercase(lower, cp);
  text = unicode::encode_utf8(lower);
}

void StripAccentsNormalizer::normalize(std::string& text) const {
  if (is_ascii(text))
    return;
  std::vector<char32_t> cps = unicode::decode_utf8(text);
  size_t w = 0;
  for (char32_t cp : cps) {
    if (!unicode::is_nonspacing_mark(cp))
      cps[w++] = cp;
  }
  cps.resize(w);
  text = unicode::encode_utf8(cps);
}

void StripNormalizer::normalize(std::string& text) const {
  size_t begin = 0, end = text.size();
  if (left_) {
    while (begin < end) {
      size_t i = begin;
      if (!unicode::is_whitespace(unicode::next_code_point(text, i)))
        break;
      begin = i;
    }
  }
  if (right_) {
    while (end > begin) {
      size_t start = end - 1;
      while (start > begin &&
             (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) {
        --start;
      }
      size_t i = start;
      if (!unicode::is_whitespace(unicode::next_code_point(text, i)))
        break;
      end = start;
    }
  }
  text = text.substr(begin, end - begin);
}

void PrependNormalizer::normalize(std::string& text) const {
  if (!text.empty())
    text.insert(0, prefix_);
}

void ReplaceNormalizer::normalize(std::string& text) const {
  text = pattern_.replace_all(text, content_);
}

void SequenceNormalizer::normalize(std::string& text) const {
  for (const auto& step : steps_)
    step->normalize(text);
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
  using Form = UnicodeNormalizer::Form;
  if (type == "NFC")
    return std::make_unique<UnicodeNormalizer>(Form::kNfc);
  if (type == "NFD")
    return std::make_unique<UnicodeNormalizer>(Form::kNfd);
  if (type == "NFKC")
    return std::make_unique<UnicodeNormalizer>(Form::kNfkc);
  if (type == "NFKD")
    return std::make_unique<UnicodeNormalizer>(Form::kNfkd);
  if (type == "Lowercase")
    return std::make_unique<LowercaseNormalizer>();
  if (type == "StripAccents")
    return std::make_unique<StripAccentsNormalizer>();
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(
        json_get_or(j, "strip_left", true, where),
        json_get_or(j, "strip_right", true, where));
  }
  if (type == "Prepend") {
    return std::make_unique<PrependNormalizer>(
        json_require<std::string>(j, "prepend", where, "a string"));
  }
  if (type == "Replace") {
    if (!j.contains("pattern")) {
      throw std::runtime_error(
          error_message(where, "a field \"pattern\"", "none"));
    }
    return std::make_unique<ReplaceNormalizer>(
        Pattern::from_json(j.at("pattern"), json_path(where, "pattern")),
        json_require<std::string>(j, "content", where, "a string"));
  }
  if (type == "Sequence") {
    const auto it = j.find("normalizers");
    if (it == j.end() || !it->is_array()) {
      throw std::runtime_error(
          error_message(json_path(where, "normalizers"), "an array", "none"));
    }
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < it->size(); ++i) {
      auto step = normalizer_from_json(
          (*it)[i], json_path(where, "normalizers[" + std::to_string(i) + "]"));
      if (step)
        steps.push_back(std::move(step));
    }
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  throw std::runtime_error(error_message(
      where,
      "a normalizer of a supported type (BertNormalizer, NFC, NFD, NFKC, "
      "NFKD, Lowercase, StripAccents, Strip, Prepend, Replace, Sequence) or "
      "null",
      "type \"" + type + "\"", "other normalizers are not implemented"));
}

}  // namespace peftcpp::data
