#pragma once
// Decoders: turn tokens back into text (HF tokenizers' decoders). As in HF,
// each decoder maps a list of token strings to a list of pieces
// (decode_chain), so they compose in a Sequence; decode joins the pieces.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/tokenizer/regex_split.h"

namespace peftcpp::data {

/// Joins tokens into text (HF `Decoder`).
class Decoder {
 public:
  virtual ~Decoder() = default;
  /// The text of `tokens`: decode_chain's pieces, concatenated.
  std::string decode(const std::vector<std::string>& tokens) const;
  /// One link of a decoder chain: tokens in, text pieces out.
  virtual std::vector<std::string> decode_chain(
      std::vector<std::string> tokens) const = 0;
};

/// HF `decoders::WordPiece`: glues "##" pieces to the previous token, puts
/// a space before the others and, with cleanup, undoes BERT's spacing
/// around punctuation and English contractions (" ." -> ".", " n't" ->
/// "n't", ...).
class WordPieceDecoder : public Decoder {
 public:
  /// A decoder for the given continuation prefix.
  explicit WordPieceDecoder(std::string prefix = "##", bool cleanup = true);
  std::vector<std::string> decode_chain(
      std::vector<std::string> tokens) const override;

 private:
  std::string prefix_;
  bool cleanup_;
};

/// HF `decoders::ByteFallback`: runs of <0xNN> tokens become the text of
/// their bytes (one U+FFFD per byte when the run is not valid UTF-8).
class ByteFallbackDecoder : public Decoder {
 public:
  std::vector<std::string> decode_chain(
      std::vector<std::string> tokens) const override;
};

/// HF `decoders::Fuse`: all tokens as one piece.
class FuseDecoder : public Decoder {
 public:
  std::vector<std::string> decode_chain(
      std::vector<std::string> tokens) const override;
};

/// HF `decoders::Strip`: removes up to `start` leading and `stop` trailing
/// `content` characters from every token.
class StripDecoder : public Decoder {
 public:
  /// A decoder stripping the character `content`.
  StripDecoder(char32_t content, size_t start, size_t stop)
      : content_(content), start_(start), stop_(stop) {}
  std::vector<std::string> decode_chain(
      std::vector<std::string> tokens) const override;

 private:
  char32_t content_;
  size_t start_, stop_;
};

/// HF `decoders::Replace`: replaces a pattern in every token.
class ReplaceDecoder : public Decoder {
 public:
  /// A decoder replacing `pattern` with `content`.
  ReplaceDecoder(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::vector<std::string> decode_chain(
      std::vector<std::string> tokens) const override;

 private:
  Pattern pattern_;
  std::string content_;
};

/// HF `decoders::Metaspace`: the replacement character becomes a space,
/// except in the first token unless prepend_scheme is "never".
class MetaspaceDecoder : public Decoder {
 public:
  /// A decoder for `replacement` (one character).
  MetaspaceDecoder(char32_t replacement, bool prepend_never)
      : replacement_(replacement), prepend_never_(prepend_never) {}
  std::vector<std::string> decode_chain(
      std::vector<std::string> tokens) const override;

 private:
  char32_t replacement_;
  bool prepend_never_;
};

/// HF `decoders::Sequence`: each decoder's pieces are the next one's
/// tokens.
class SequenceDecoder : public Decoder {
 public:
  /// The decoders, applied in order.
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps);
  std::vector<std::string> decode_chain(
      std::vector<std::string> tokens) const override;

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

/// Builds the decoder that a tokenizer.json "decoder" value describes; null
/// gives nullptr (tokens are then joined with spaces). Throws
/// std::runtime_error naming `where` and the supported types otherwise.
std::unique_ptr<Decoder> decoder_from_json(const nlohmann::json& j,
                                           std::string_view where);

}  // namespace peftcpp::data
