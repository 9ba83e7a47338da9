#pragma once
// Decoders: turn tokens back into text (HF tokenizers' decoders).

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace peftcpp::data {

/// Joins tokens into text (HF `Decoder`).
class Decoder {
 public:
  virtual ~Decoder() = default;
  /// The text of `tokens`.
  virtual std::string decode(const std::vector<std::string>& tokens) const = 0;
};

/// HF `decoders::WordPiece`: glues "##" pieces to the previous token, puts
/// a space before the others and, with cleanup, undoes BERT's spacing
/// around punctuation and English contractions (" ." -> ".", " n't" ->
/// "n't", ...).
class WordPieceDecoder : public Decoder {
 public:
  /// A decoder for the given continuation prefix.
  explicit WordPieceDecoder(std::string prefix = "##", bool cleanup = true);
  std::string decode(const std::vector<std::string>& tokens) const override;

 private:
  std::string prefix_;
  bool cleanup_;
};

/// Builds the decoder that a tokenizer.json "decoder" value describes; null
/// gives nullptr (tokens are then joined with spaces). Throws
/// std::runtime_error naming `where` and the supported types otherwise.
std::unique_ptr<Decoder> decoder_from_json(const nlohmann::json& j,
                                           std::string_view where);

}  // namespace peftcpp::data
