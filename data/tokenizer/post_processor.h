#pragma once
// Post-processors: the last stage of the Hugging Face tokenizers pipeline,
// wrapping the tokens of one sequence or a pair in special tokens
// ("[CLS] A [SEP] B [SEP]") and assigning type ids.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/tokenizer/encoding.h"

namespace peftcpp::data {

/// Adds special tokens and type ids (HF `PostProcessor`).
class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  /// How many special tokens process() adds; truncation reserves room for
  /// them when add_special_tokens is on.
  virtual size_t added_tokens(bool is_pair) const = 0;
  /// Merges `first` (and `second`) into one encoding. Type ids are set
  /// even when add_special_tokens is false, as in HF.
  virtual Encoding process(Encoding first, std::optional<Encoding> second,
                           bool add_special_tokens) const = 0;
};

/// A special token of a template: one id per token (usually one).
struct TemplateSpecialToken {
  /// Name used in the template, e.g. "[CLS]".
  std::string id;
  /// Vocabulary ids it expands to.
  std::vector<int64_t> ids;
  /// Token strings, as many as ids.
  std::vector<std::string> tokens;
};

/// One element of a template: a sequence ($A / $B) or a special token.
struct TemplatePiece {
  /// True for $A / $B, false for a special token.
  bool is_sequence = false;
  /// For sequences: 0 for A, 1 for B.
  int sequence = 0;
  /// For special tokens: the name looked up in special_tokens.
  std::string special;
  /// Type id given to the piece's tokens.
  int64_t type_id = 0;
};

/// HF `TemplateProcessing`: e.g. single "[CLS]:0 $A:0 [SEP]:0", pair
/// "[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1".
class TemplateProcessing : public PostProcessor {
 public:
  /// Checks that the pair template uses both sequences and that every
  /// special token is defined; throws std::runtime_error otherwise.
  TemplateProcessing(std::vector<TemplatePiece> single,
                     std::vector<TemplatePiece> pair,
                     std::map<std::string, TemplateSpecialToken> special);
  size_t added_tokens(bool is_pair) const override;
  Encoding process(Encoding first, std::optional<Encoding> second,
                   bool add_special_tokens) const override;

 private:
  size_t count_added(const std::vector<TemplatePiece>& pieces) const;
  std::vector<TemplatePiece> single_, pair_;
  std::map<std::string, TemplateSpecialToken> special_;
};

/// HF's processing without special tokens: the sequences concatenated, type
/// ids 0 and 1. This is what HF `processors::ByteLevel` does to ids (it
/// only trims offsets, which Encoding does not carry).
class PlainProcessing : public PostProcessor {
 public:
  size_t added_tokens(bool is_pair) const override;
  Encoding process(Encoding first, std::optional<Encoding> second,
                   bool add_special_tokens) const override;
};

/// A (token, id) pair as BertProcessing and RobertaProcessing store them.
struct SpecialTokenId {
  /// Token string.
  std::string token;
  /// Its vocabulary id.
  int64_t id = 0;
};

/// HF `BertProcessing` as the template it is: "[CLS]:0 $A:0 [SEP]:0" and
/// "[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1".
std::unique_ptr<PostProcessor> bert_processing(const SpecialTokenId& sep,
                                               const SpecialTokenId& cls);

/// HF `RobertaProcessing` as the template it is: "<s> $A </s>" and
/// "<s> $A </s> </s> $B </s>", all type ids 0 (offset trimming does not
/// change ids, so it is not modelled).
std::unique_ptr<PostProcessor> roberta_processing(const SpecialTokenId& sep,
                                                  const SpecialTokenId& cls);

/// Builds the post-processor that a tokenizer.json "post_processor" value
/// describes; null gives nullptr. Throws std::runtime_error naming `where`
/// and the supported types for anything else.
std::unique_ptr<PostProcessor> post_processor_from_json(const nlohmann::json& j,
                                                        std::string_view where);

}  // namespace peftcpp::data
