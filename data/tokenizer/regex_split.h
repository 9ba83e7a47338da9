#pragma once
// Pattern matching and splitting as Hugging Face tokenizers'
// NormalizedString::split does it: a pattern (a PCRE2 regex standing in for
// HF's Oniguruma one, a literal string or a character class) finds matches,
// the matches and the gaps between them cover the text, and a delimiter
// behavior decides which of those pieces become words.

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace peftcpp::data {

/// A compiled regular expression (PCRE2 with UTF, UCP and JIT), matched
/// like Oniguruma's find_iter: leftmost, non-overlapping, an empty match
/// moves the search on by one character. Thread-safe for matching.
class Regex {
 public:
  /// Compiles `pattern`; throws std::runtime_error naming `where` and the
  /// position of the problem when PCRE2 rejects it.
  Regex(std::string_view pattern, std::string_view where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  /// Byte ranges [begin, end) of all matches in valid UTF-8 `text`.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// A tokenizer.json pattern: {"String": "..."} (a literal) or
/// {"Regex": "..."}.
class Pattern {
 public:
  /// Parses the JSON form; throws std::runtime_error naming `where`.
  static Pattern from_json(const nlohmann::json& j, std::string_view where);
  /// A literal pattern.
  static Pattern literal(std::string text);

  /// Byte ranges of the leftmost non-overlapping matches.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  /// `text` with every match replaced by `content`.
  std::string replace_all(std::string_view text,
                          std::string_view content) const;

 private:
  std::string literal_;
  std::shared_ptr<const Regex> regex_;  // null for a literal
};

/// HF's SplitDelimiterBehavior: what happens to the matched delimiters.
enum class SplitBehavior {
  /// Matches are dropped.
  kRemoved,
  /// Matches become words of their own.
  kIsolated,
  /// Each match is glued to the piece before it.
  kMergedWithPrevious,
  /// Each match is glued to the piece after it.
  kMergedWithNext,
  /// Runs of matches, and runs of non-matches, become one word each.
  kContiguous,
};

/// Parses "Removed", "Isolated", ...; throws std::runtime_error naming
/// `where` and the accepted names otherwise.
SplitBehavior split_behavior_from_string(const std::string& name,
                                         std::string_view where);

/// A piece of text: a match of the pattern or a gap between matches.
struct MatchSpan {
  /// First byte.
  size_t begin;
  /// One past the last byte.
  size_t end;
  /// True for a match, false for a gap.
  bool is_match;
};

/// Matches and the gaps between them covering `size` bytes, as HF's
/// Pattern::find_matches gives them (empty text: one empty gap). `invert`
/// swaps matches and gaps (HF's Invert).
std::vector<MatchSpan> cover_with_gaps(
    size_t size, const std::vector<std::pair<size_t, size_t>>& matches,
    bool invert = false);

/// Matches of a character predicate, each character its own match (HF's
/// Pattern for Fn(char) -> bool), with the gaps between them.
std::vector<MatchSpan> match_chars(std::string_view text,
                                   const std::function<bool(char32_t)>& pred);

/// Appends the non-empty words that `behavior` makes of `spans` over
/// `text` to `out` (HF NormalizedString::split).
void split_spans(std::string_view text, const std::vector<MatchSpan>& spans,
                 SplitBehavior behavior, std::vector<std::string_view>& out);

}  // namespace peftcpp::data
