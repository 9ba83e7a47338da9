#pragma once
// Pre-tokenizers: the second stage of the Hugging Face tokenizers pipeline,
// cutting normalized text into the words the model tokenizes one by one.

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace peftcpp::data {

/// The words of one piece of normalized text. Words view either the input
/// text or strings kept in `storage` (for pre-tokenizers that rewrite text,
/// such as byte-level or Metaspace, which keep their output there).
struct PreTokenized {
  /// The words, in order; never empty strings.
  std::vector<std::string_view> words;
  /// Owner of rewritten text; a deque so views stay valid as it grows.
  std::deque<std::string> storage;
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

/// Builds the pre-tokenizer that a tokenizer.json "pre_tokenizer" value
/// describes; null gives nullptr. Throws std::runtime_error naming `where`
/// and the supported types for anything else.
std::unique_ptr<PreTokenizer> pre_tokenizer_from_json(const nlohmann::json& j,
                                                      std::string_view where);

}  // namespace peftcpp::data
