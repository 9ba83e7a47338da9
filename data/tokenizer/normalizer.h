#pragma once
// Normalizers: the first stage of the Hugging Face tokenizers pipeline,
// rewriting raw text before it is split (cleanup, lowercase, accents).

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace peftcpp::data {

/// Rewrites text before pre-tokenization (HF `Normalizer`).
class Normalizer {
 public:
  virtual ~Normalizer() = default;
  /// Normalizes valid UTF-8 `text` in place.
  virtual void normalize(std::string& text) const = 0;
};

/// Options of BERT's normalizer, named as in tokenizer.json.
struct BertNormalizerOptions {
  /// Drop control characters, U+0000 and U+FFFD; map whitespace to ' '.
  bool clean_text = true;
  /// Put spaces around CJK ideographs so each becomes its own word.
  bool handle_chinese_chars = true;
  /// NFD, then drop nonspacing marks; unset means "same as lowercase".
  std::optional<bool> strip_accents;
  /// Rust's char::to_lowercase, character by character.
  bool lowercase = true;
};

/// HF `BertNormalizer`: clean_text, then CJK spacing, then accent
/// stripping, then lowercasing, in that order.
class BertNormalizer : public Normalizer {
 public:
  /// A normalizer with the given options.
  explicit BertNormalizer(BertNormalizerOptions options = {});
  void normalize(std::string& text) const override;
  /// The options it was built with.
  const BertNormalizerOptions& options() const { return options_; }

 private:
  BertNormalizerOptions options_;
  bool strip_accents_;  // options_.strip_accents resolved against lowercase
};

/// Builds the normalizer that a tokenizer.json "normalizer" value
/// describes; null gives nullptr. Throws std::runtime_error naming `where`
/// and the supported types for anything else.
std::unique_ptr<Normalizer> normalizer_from_json(const nlohmann::json& j,
                                                 std::string_view where);

}  // namespace peftcpp::data
