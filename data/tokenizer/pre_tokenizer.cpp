#include "data/tokenizer/pre_tokenizer.h"

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <utility>

#include <utf8proc.h>

#include "common/error.h"
#include "data/tokenizer/byte_level.h"
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

// Rust's char::is_numeric: general categories Nd, Nl and No.
bool is_numeric(char32_t cp) {
  if (cp < 0x80)
    return cp >= '0' && cp <= '9';
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

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

SplitPreTokenizer::SplitPreTokenizer(Pattern pattern, SplitBehavior behavior,
                                     bool invert)
    : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}

void SplitPreTokenizer::pre_tokenize(std::string_view text,
                                     PreTokenized& out) const {
  split_spans(text,
              cover_with_gaps(text.size(), pattern_.find_all(text), invert_),
              behavior_, out.words);
}

CharSplitPreTokenizer::CharSplitPreTokenizer(Class cls, SplitBehavior behavior)
    : class_(cls), behavior_(behavior) {}

void CharSplitPreTokenizer::pre_tokenize(std::string_view text,
                                         PreTokenized& out) const {
  std::vector<MatchSpan> spans;
  switch (class_) {
    case Class::kNumeric:
      spans = match_chars(text, is_numeric);
      break;
    case Class::kPunctuation:
      spans = match_chars(text, unicode::is_punctuation);
      break;
    case Class::kWhitespace:
      spans = match_chars(text, unicode::is_whitespace);
      break;
  }
  split_spans(text, spans, behavior_, out.words);
}

void WhitespacePreTokenizer::pre_tokenize(std::string_view text,
                                          PreTokenized& out) const {
  static const Regex kWords(R"(\w+|[^\w\s]+)", "Whitespace");
  split_spans(text,
              cover_with_gaps(text.size(), kWords.find_all(text),
                              /*invert=*/true),
              SplitBehavior::kRemoved, out.words);
}

MetaspacePreTokenizer::MetaspacePreTokenizer(std::string replacement,
                                             PrependScheme scheme, bool split)
    : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {
  size_t i = 0;
  replacement_cp_ = unicode::next_code_point(replacement_, i);
}

void MetaspacePreTokenizer::pre_tokenize(std::string_view text,
                                         PreTokenized& out) const {
  std::string s;
  s.reserve(text.size() + replacement_.size());
  for (char c : text) {
    if (c == ' ') {
      s += replacement_;
    } else {
      s += c;
    }
  }
  const bool starts_with_replacement =
      s.compare(0, replacement_.size(), replacement_) == 0;
  const bool prepend =
      !s.empty() && !starts_with_replacement &&
      (scheme_ == PrependScheme::kAlways ||
       (scheme_ == PrependScheme::kFirst && out.at_input_start));
  if (prepend)
    s.insert(0, replacement_);
  const std::string_view stored = out.storage.emplace_back(std::move(s));
  if (!split_) {
    if (!stored.empty())
      out.words.push_back(stored);
    return;
  }
  const char32_t r = replacement_cp_;
  split_spans(stored, match_chars(stored, [r](char32_t c) { return c == r; }),
              SplitBehavior::kMergedWithNext, out.words);
}

SequencePreTokenizer::SequencePreTokenizer(
    std::vector<std::unique_ptr<PreTokenizer>> steps)
    : steps_(std::move(steps)) {}

void SequencePreTokenizer::pre_tokenize(std::string_view text,
                                        PreTokenized& out) const {
  // Every step writes its rewritten text into out.storage (views stay
  // valid); the words of a step are collected aside and fed to the next.
  const bool at_start = out.at_input_start;
  const size_t base = out.words.size();
  std::vector<std::string_view> current{text};
  for (const auto& step : steps_) {
    std::vector<std::string_view> next;
    for (size_t i = 0; i < current.size(); ++i) {
      // Only a first word that still begins where the text began starts
      // the input (a rewritten word cannot have lost its front).
      out.at_input_start = at_start && i == 0 &&
                           (current[i].data() == text.data() ||
                            current[i].data() < text.data() ||
                            current[i].data() >= text.data() + text.size());
      step->pre_tokenize(current[i], out);
      next.insert(next.end(), out.words.begin() + base, out.words.end());
      out.words.resize(base);
    }
    current.swap(next);
  }
  out.at_input_start = at_start;
  out.words.insert(out.words.end(), current.begin(), current.end());
}

namespace {

SplitBehavior behavior_from_json(const nlohmann::json& j,
                                 std::string_view where,
                                 SplitBehavior fallback) {
  const auto it = j.find("behavior");
  if (it == j.end() || it->is_null())
    return fallback;
  return split_behavior_from_string(
      json_as<std::string>(*it, json_path(where, "behavior"), "a string"),
      json_path(where, "behavior"));
}

PrependScheme prepend_scheme_from_json(const nlohmann::json& j,
                                       std::string_view where) {
  const auto it = j.find("prepend_scheme");
  if (it == j.end() || it->is_null()) {
    // Files older than prepend_scheme carry add_prefix_space instead.
    return json_get_or(j, "add_prefix_space", true, where)
               ? PrependScheme::kAlways
               : PrependScheme::kNever;
  }
  const std::string at = json_path(where, "prepend_scheme");
  const auto name = json_as<std::string>(*it, at, "a string");
  if (name == "always")
    return PrependScheme::kAlways;
  if (name == "first")
    return PrependScheme::kFirst;
  if (name == "never")
    return PrependScheme::kNever;
  throw std::runtime_error(error_message(
      at, "\"always\", \"first\" or \"never\"", "\"" + name + "\""));
}

}  // namespace

std::unique_ptr<PreTokenizer> pre_tokenizer_from_json(const nlohmann::json& j,
                                                      std::string_view where) {
  if (j.is_null())
    return nullptr;
  const std::string type = json_type(j, where);
  if (type == "BertPreTokenizer")
    return std::make_unique<BertPreTokenizer>();
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(
        json_get_or(j, "add_prefix_space", true, where),
        json_get_or(j, "use_regex", true, where));
  }
  if (type == "Split") {
    if (!j.contains("pattern")) {
      throw std::runtime_error(
          error_message(where, "a field \"pattern\"", "none"));
    }
    return std::make_unique<SplitPreTokenizer>(
        Pattern::from_json(j.at("pattern"), json_path(where, "pattern")),
        behavior_from_json(j, where, SplitBehavior::kRemoved),
        json_get_or(j, "invert", false, where));
  }
  if (type == "Digits") {
    return std::make_unique<CharSplitPreTokenizer>(
        CharSplitPreTokenizer::Class::kNumeric,
        json_get_or(j, "individual_digits", false, where)
            ? SplitBehavior::kIsolated
            : SplitBehavior::kContiguous);
  }
  if (type == "Punctuation") {
    return std::make_unique<CharSplitPreTokenizer>(
        CharSplitPreTokenizer::Class::kPunctuation,
        behavior_from_json(j, where, SplitBehavior::kIsolated));
  }
  if (type == "WhitespaceSplit") {
    return std::make_unique<CharSplitPreTokenizer>(
        CharSplitPreTokenizer::Class::kWhitespace, SplitBehavior::kRemoved);
  }
  if (type == "Whitespace")
    return std::make_unique<WhitespacePreTokenizer>();
  if (type == "Metaspace") {
    const auto replacement =
        json_get_or<std::string>(j, "replacement", "\xE2\x96\x81", where);
    if (replacement.empty() || unicode::count_code_points(replacement) != 1) {
      throw std::runtime_error(error_message(json_path(where, "replacement"),
                                             "one character",
                                             "\"" + replacement + "\""));
    }
    return std::make_unique<MetaspacePreTokenizer>(
        replacement, prepend_scheme_from_json(j, where),
        json_get_or(j, "split", true, where));
  }
  if (type == "Sequence") {
    const auto it = j.find("pretokenizers");
    if (it == j.end() || !it->is_array()) {
      throw std::runtime_error(
          error_message(json_path(where, "pretokenizers"), "an array", "none"));
    }
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < it->size(); ++i) {
      auto step = pre_tokenizer_from_json(
          (*it)[i],
          json_path(where, "pretokenizers[" + std::to_string(i) + "]"));
      if (step)
        steps.push_back(std::move(step));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  throw std::runtime_error(error_message(
      where,
      "a pre-tokenizer of a supported type (BertPreTokenizer, ByteLevel, "
      "Split, Digits, Punctuation, Whitespace, WhitespaceSplit, Metaspace, "
      "Sequence) or null",
      "type \"" + type + "\"", "other pre-tokenizers are not implemented"));
}

}  // namespace peftcpp::data
