#pragma once
// Normalizers: the first stage of the Hugging Face tokenizers pipeline,
// rewriting raw text before it is split (cleanup, lowercase, accents).

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/tokenizer/regex_split.h"

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

/// A Unicode normalization form, HF's NFC / NFD / NFKC / NFKD normalizers.
class UnicodeNormalizer : public Normalizer {
 public:
  /// The four forms.
  enum class Form { kNfc, kNfd, kNfkc, kNfkd };
  /// A normalizer to `form`.
  explicit UnicodeNormalizer(Form form) : form_(form) {}
  void normalize(std::string& text) const override;

 private:
  Form form_;
};

/// HF `Lowercase`: Rust's char::to_lowercase, character by character.
class LowercaseNormalizer : public Normalizer {
 public:
  void normalize(std::string& text) const override;
};

/// HF `StripAccents`: drops nonspacing marks (meant to follow NFD).
class StripAccentsNormalizer : public Normalizer {
 public:
  void normalize(std::string& text) const override;
};

/// HF `Strip`: removes leading and/or trailing whitespace.
class StripNormalizer : public Normalizer {
 public:
  /// Which ends to strip.
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override;

 private:
  bool left_, right_;
};

/// HF `Prepend`: puts a string in front of non-empty text.
class PrependNormalizer : public Normalizer {
 public:
  /// A normalizer prepending `prefix`.
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override;

 private:
  std::string prefix_;
};

/// HF `Replace`: every match of a pattern becomes `content`.
class ReplaceNormalizer : public Normalizer {
 public:
  /// A normalizer replacing `pattern` with `content`.
  ReplaceNormalizer(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text) const override;

 private:
  Pattern pattern_;
  std::string content_;
};

/// HF `normalizers::Sequence`: the normalizers in order.
class SequenceNormalizer : public Normalizer {
 public:
  /// The normalizers, applied in order.
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  void normalize(std::string& text) const override;

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

/// Builds the normalizer that a tokenizer.json "normalizer" value
/// describes; null gives nullptr. Throws std::runtime_error naming `where`
/// and the supported types for anything else.
std::unique_ptr<Normalizer> normalizer_from_json(const nlohmann::json& j,
                                                 std::string_view where);

}  // namespace peftcpp::data
