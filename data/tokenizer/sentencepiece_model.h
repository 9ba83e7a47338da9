#pragma once
// SentencePiece vocabularies (LLaMA-2's tokenizer.model, GGUF "llama"
// vocabularies) turned into the tokenizer.json transformers 5 builds from
// them, so Tokenizer::from_json runs them.
//
// transformers 5 never runs libsentencepiece's encoder: LlamaTokenizer
// reads the pieces and builds a `tokenizers` pipeline. No normalizer (the
// .model's normalization rule and whitespace folding are ignored), a
// Metaspace pre-tokenizer (' ' -> '▁', '▁' prepended unless the text
// starts with one; only at the start of the input unless `legacy`), BPE
// with byte fallback whose merges are generated from the vocabulary (every
// split of a piece into two pieces), and a decoder that undoes all that.
// libsentencepiece's own encoder differs: it prepends '▁' even before a
// leading space or a user-defined piece and applies the model's normalizer
// (tests/data/test_sentencepiece_tokenizer.cpp shows such inputs).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/tokenizer/tokenizer.h"

namespace peftcpp::data {

/// Piece types of sentencepiece's ModelProto (and GGUF's token_type).
enum class PieceType {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

/// One vocabulary entry of a SentencePiece model.
struct SentencePiece {
  /// The piece text ('▁' for a space, "<0x41>" for a byte).
  std::string piece;
  /// Log probability (unigram) or negated merge order (BPE).
  float score = 0;
  /// What the piece is.
  PieceType type = PieceType::kNormal;
};

/// Reads a SentencePiece model file (tokenizer.model) with libsentencepiece.
/// Throws std::runtime_error naming the file when it cannot be loaded.
std::vector<SentencePiece> read_sentencepiece_model(
    const std::filesystem::path& model_file);

/// How generated merges are ranked (transformers' generate_merges).
enum class MergeOrder {
  /// By the merged piece's id, then the shorter left half, then the shorter
  /// right half (a tokenizer.model file).
  kById,
  /// By the merged piece's score, highest first, then the longer left half,
  /// then the longer right half (GGUF "llama" vocabularies).
  kByScore,
};

/// transformers' generate_merges: for each piece (in id order) every split
/// into two pieces of the vocabulary, ordered by the ids of the halves,
/// then all of them stably sorted as `order` says. Lengths count code
/// points, as Python does.
std::vector<std::pair<std::string, std::string>> generate_merges(
    const std::vector<SentencePiece>& pieces, MergeOrder order);

/// The tokenizer.json value transformers' LlamaTokenizer builds around a
/// SentencePiece vocabulary and its merges (generate_merges' or a GGUF
/// file's): BPE (byte_fallback, fuse_unk, no unk token), Metaspace (prepend
/// scheme from legacy and add_prefix_space, no split),
/// Replace/ByteFallback/Fuse(/Strip) decoder, a BOS/EOS TemplateProcessing,
/// and as added tokens the options' special tokens and the control pieces
/// (special) and the user-defined pieces (not special).
nlohmann::json llama_tokenizer_json(
    const std::vector<SentencePiece>& pieces,
    const std::vector<std::pair<std::string, std::string>>& merges,
    const SentencePieceOptions& options);

/// A special token of a post-processor template and its id.
struct TemplateToken {
  /// Token string.
  std::string token;
  /// Its id.
  int64_t id = 0;
};

/// transformers' update_post_processor as a tokenizer.json TemplateProcessing
/// value: "[bos:0] $A:0 [eos:0]" and for a pair the same again with type id
/// 1, each special token only when given.
nlohmann::json bos_eos_template_json(const std::optional<TemplateToken>& bos,
                                     const std::optional<TemplateToken>& eos);

}  // namespace peftcpp::data
