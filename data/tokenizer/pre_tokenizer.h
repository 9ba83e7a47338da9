#pragma once
// Pre-tokenizers: the second stage of the Hugging Face tokenizers pipeline,
// cutting normalized text into the words the model tokenizes one by one.

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/tokenizer/regex_split.h"

namespace peftcpp::data {

/// The words of one piece of normalized text. Words view either the input
/// text or strings kept in `storage` (for pre-tokenizers that rewrite text,
/// such as byte-level or Metaspace, which keep their output there).
struct PreTokenized {
  /// The words, in order; never empty strings.
  std::vector<std::string_view> words;
  /// Owner of rewritten text; a deque so views stay valid as it grows.
  std::deque<std::string> storage;
  /// Whether the text passed to the next pre_tokenize call starts at
  /// offset 0 of the input (HF's offsets_original().0 == 0), which
  /// Metaspace's prepend_scheme "first" asks. Set by the caller.
  bool at_input_start = true;
};

/// Splits normalized text into words (HF `PreTokenizer`).
class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  /// Appends the words of `text` to `out`. `text` must outlive `out`.
  virtual void pre_tokenize(std::string_view text, PreTokenized& out) const = 0;
};

/// HF `BertPreTokenizer`: splits on whitespace (dropped) and isolates each
/// punctuation character (ASCII punctuation or Unicode P*) as its own word.
class BertPreTokenizer : public PreTokenizer {
 public:
  void pre_tokenize(std::string_view text, PreTokenized& out) const override;
};

/// HF `Split`: cuts text at the matches of a pattern, which `behavior`
/// keeps, drops or glues to a neighbour; `invert` swaps matches and gaps.
class SplitPreTokenizer : public PreTokenizer {
 public:
  /// A pre-tokenizer cutting at `pattern`.
  SplitPreTokenizer(Pattern pattern, SplitBehavior behavior, bool invert);
  void pre_tokenize(std::string_view text, PreTokenized& out) const override;

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

/// Cuts at every character a predicate accepts, each such character its
/// own match: HF `Digits` (char::is_numeric, Isolated with
/// individual_digits, else Contiguous), `Punctuation` (Isolated by default)
/// and `WhitespaceSplit` (char::is_whitespace, Removed).
class CharSplitPreTokenizer : public PreTokenizer {
 public:
  /// The characters a split happens at.
  enum class Class { kNumeric, kPunctuation, kWhitespace };
  /// A pre-tokenizer for one character class.
  CharSplitPreTokenizer(Class cls, SplitBehavior behavior);
  void pre_tokenize(std::string_view text, PreTokenized& out) const override;

 private:
  Class class_;
  SplitBehavior behavior_;
};

/// HF `Whitespace`: the words of `\w+|[^\w\s]+`, everything else dropped.
class WhitespacePreTokenizer : public PreTokenizer {
 public:
  void pre_tokenize(std::string_view text, PreTokenized& out) const override;
};

/// When Metaspace puts its replacement in front of a word.
enum class PrependScheme {
  /// Before every piece that does not start with it.
  kAlways,
  /// Only before the piece at the start of the input.
  kFirst,
  /// Never.
  kNever,
};

/// HF `pre_tokenizers::Metaspace` (SentencePiece's view of spaces):
/// spaces become the replacement ("▁"), which is prepended per
/// `prepend_scheme`; with `split`, words start at each replacement.
class MetaspacePreTokenizer : public PreTokenizer {
 public:
  /// A pre-tokenizer with tokenizer.json's options.
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme,
                        bool split);
  void pre_tokenize(std::string_view text, PreTokenized& out) const override;

 private:
  std::string replacement_;
  char32_t replacement_cp_;
  PrependScheme scheme_;
  bool split_;
};

/// HF `pre_tokenizers::Sequence`: each pre-tokenizer splits the words of
/// the one before.
class SequencePreTokenizer : public PreTokenizer {
 public:
  /// The pre-tokenizers, applied in order.
  explicit SequencePreTokenizer(
      std::vector<std::unique_ptr<PreTokenizer>> steps);
  void pre_tokenize(std::string_view text, PreTokenized& out) const override;

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

/// Builds the pre-tokenizer that a tokenizer.json "pre_tokenizer" value
/// describes; null gives nullptr. Throws std::runtime_error naming `where`
/// and the supported types for anything else.
std::unique_ptr<PreTokenizer> pre_tokenizer_from_json(const nlohmann::json& j,
                                                      std::string_view where);

}  // namespace peftcpp::data
