#include "data/tokenizer/regex_split.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <stdexcept>

#include "common/error.h"
#include "data/tokenizer/json_util.h"
#include "data/tokenizer/unicode.h"

namespace peftcpp::data {

namespace {

// Length of the UTF-8 character that starts with byte `b` (1 for stray
// continuation bytes, so a scan always moves on).
size_t char_length(unsigned char b) {
  if (b < 0xC0)
    return 1;
  if (b < 0xE0)
    return 2;
  if (b < 0xF0)
    return 3;
  return 4;
}

// Per-thread match data and a JIT stack big enough for long runs of one
// class (a megabyte of spaces against `\s+(?!\S)`); PCRE2's default 32 KiB
// stack would fail there.
struct ThreadMatchState {
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  ThreadMatchState() {
    context = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, nullptr);
    pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~ThreadMatchState() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
  }
};

}  // namespace

struct Regex::Impl {
  pcre2_code* code = nullptr;
  std::string pattern;
  ~Impl() { pcre2_code_free(code); }
};

Regex::Regex(std::string_view pattern, std::string_view where)
    : impl_(std::make_unique<Impl>()) {
  impl_->pattern = std::string(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  // UCP: \s, \w, \d and POSIX classes follow Unicode properties, as they do
  // in Oniguruma's Ruby syntax that HF compiles its patterns with.
  impl_->code = pcre2_compile(
      reinterpret_cast<PCRE2_SPTR>(impl_->pattern.data()),
      impl_->pattern.size(), PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (impl_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    throw std::runtime_error(error_message(
        where, "a regular expression PCRE2 accepts",
        "\"" + impl_->pattern + "\" (" +
            reinterpret_cast<const char*>(message) + " at offset " +
            std::to_string(offset) + ")",
        "HF compiles patterns with Oniguruma; a construct only it knows "
        "needs translating"));
  }
  // JIT is an optimisation only: without it (unsupported CPU) the
  // interpreter gives the same matches.
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);
}

Regex::~Regex() = default;

std::vector<std::pair<size_t, size_t>> Regex::find_all(
    std::string_view text) const {
  thread_local ThreadMatchState state;
  std::vector<std::pair<size_t, size_t>> out;
  pcre2_match_data* data =
      pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  size_t start = 0;
  while (start <= text.size()) {
    const int rc = pcre2_match(
        impl_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(),
        start, PCRE2_NO_UTF_CHECK, data, state.context);
    if (rc == PCRE2_ERROR_NOMATCH)
      break;
    if (rc < 0) {
      pcre2_match_data_free(data);
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      throw std::runtime_error(error_message(
          "Regex::find_all", "a successful match of \"" + impl_->pattern + "\"",
          reinterpret_cast<const char*>(message)));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data);
    const size_t begin = ov[0], end = ov[1];
    out.emplace_back(begin, end);
    if (end > begin) {
      start = end;
    } else if (end < text.size()) {
      // An empty match: search again one character further on.
      start = end + char_length(static_cast<unsigned char>(text[end]));
    } else {
      break;
    }
  }
  pcre2_match_data_free(data);
  return out;
}

Pattern Pattern::literal(std::string text) {
  Pattern p;
  p.literal_ = std::move(text);
  return p;
}

Pattern Pattern::from_json(const nlohmann::json& j, std::string_view where) {
  if (j.is_object() && j.size() == 1 && j.contains("String") &&
      j.at("String").is_string()) {
    return literal(j.at("String").get<std::string>());
  }
  if (j.is_object() && j.size() == 1 && j.contains("Regex") &&
      j.at("Regex").is_string()) {
    Pattern p;
    p.regex_ =
        std::make_shared<const Regex>(j.at("Regex").get<std::string>(), where);
    return p;
  }
  throw std::runtime_error(error_message(
      where, "{\"String\": \"...\"} or {\"Regex\": \"...\"}", j.dump()));
}

std::vector<std::pair<size_t, size_t>> Pattern::find_all(
    std::string_view text) const {
  if (regex_)
    return regex_->find_all(text);
  std::vector<std::pair<size_t, size_t>> out;
  if (literal_.empty())
    return out;  // HF's escaped empty regex never reaches a tokenizer.json
  for (size_t at = text.find(literal_); at != std::string_view::npos;
       at = text.find(literal_, at + literal_.size())) {
    out.emplace_back(at, at + literal_.size());
  }
  return out;
}

std::string Pattern::replace_all(std::string_view text,
                                 std::string_view content) const {
  std::string out;
  size_t done = 0;
  for (const auto& [begin, end] : find_all(text)) {
    out.append(text.substr(done, begin - done));
    out.append(content);
    done = end;
  }
  out.append(text.substr(done));
  return out;
}

SplitBehavior split_behavior_from_string(const std::string& name,
                                         std::string_view where) {
  if (name == "Removed")
    return SplitBehavior::kRemoved;
  if (name == "Isolated")
    return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious")
    return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext")
    return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous")
    return SplitBehavior::kContiguous;
  throw std::runtime_error(
      error_message(where,
                    "a split behavior (Removed, Isolated, MergedWithPrevious, "
                    "MergedWithNext, Contiguous)",
                    "\"" + name + "\""));
}

std::vector<MatchSpan> cover_with_gaps(
    size_t size, const std::vector<std::pair<size_t, size_t>>& matches,
    bool invert) {
  std::vector<MatchSpan> out;
  if (size == 0) {
    out.push_back({0, 0, invert});
    return out;
  }
  size_t prev = 0;
  for (const auto& [begin, end] : matches) {
    if (prev != begin)
      out.push_back({prev, begin, invert});
    out.push_back({begin, end, !invert});
    prev = end;
  }
  if (prev != size)
    out.push_back({prev, size, invert});
  return out;
}

std::vector<MatchSpan> match_chars(std::string_view text,
                                   const std::function<bool(char32_t)>& pred) {
  std::vector<MatchSpan> out;
  if (text.empty()) {
    out.push_back({0, 0, false});
    return out;
  }
  size_t last = 0;
  for (size_t i = 0; i < text.size();) {
    const size_t at = i;
    const char32_t cp = unicode::next_code_point(text, i);
    if (pred(cp)) {
      if (last < at)
        out.push_back({last, at, false});
      out.push_back({at, i, true});
      last = i;
    }
  }
  if (last < text.size())
    out.push_back({last, text.size(), false});
  return out;
}

void split_spans(std::string_view text, const std::vector<MatchSpan>& spans,
                 SplitBehavior behavior, std::vector<std::string_view>& out) {
  // (begin, end, keep) per piece, folded exactly as HF folds its matches.
  struct Piece {
    size_t begin, end;
  };
  std::vector<Piece> pieces;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const auto& s : spans) {
        if (!s.is_match)
          pieces.push_back({s.begin, s.end});
      }
      break;
    case SplitBehavior::kIsolated:
      for (const auto& s : spans)
        pieces.push_back({s.begin, s.end});
      break;
    case SplitBehavior::kContiguous:
      for (const auto& s : spans) {
        if (s.is_match == previous_match && !pieces.empty()) {
          pieces.back().end = s.end;
        } else {
          pieces.push_back({s.begin, s.end});
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const auto& s : spans) {
        if (s.is_match && !previous_match && !pieces.empty()) {
          pieces.back().end = s.end;
        } else {
          pieces.push_back({s.begin, s.end});
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !pieces.empty()) {
          pieces.back().begin = it->begin;
        } else {
          pieces.push_back({it->begin, it->end});
        }
        previous_match = it->is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
  }
  for (const auto& p : pieces) {
    if (p.end > p.begin)
      out.push_back(text.substr(p.begin, p.end - p.begin));
  }
}

}  // namespace peftcpp::data
