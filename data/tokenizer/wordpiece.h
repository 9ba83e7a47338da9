#pragma once
// WordPiece (Schuster & Nakajima 2012, as used by BERT): greedy
// longest-match-first segmentation of a word into vocabulary pieces, the
// pieces after the first carrying a "##" prefix.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "data/tokenizer/model.h"

namespace peftcpp::data {

/// WordPiece options, named as in tokenizer.json.
struct WordPieceOptions {
  /// Token for words that cannot be segmented; must be in the vocabulary.
  std::string unk_token = "[UNK]";
  /// Prefix of the vocabulary entries that continue a word.
  std::string continuing_subword_prefix = "##";
  /// Longer words (in code points, not bytes) become unk_token whole.
  size_t max_input_chars_per_word = 100;
};

/// HF `models::WordPiece`.
class WordPiece : public Model {
 public:
  /// A model over `vocab` (token, id) pairs; a repeated token keeps its
  /// last id, as HF's map insertion does. Throws std::out_of_range when
  /// unk_token is not in the vocabulary.
  WordPiece(const std::vector<std::pair<std::string, int64_t>>& vocab,
            WordPieceOptions options);
  // The maps view arena_, so a copy would point into the original.
  WordPiece(const WordPiece&) = delete;
  WordPiece& operator=(const WordPiece&) = delete;

  /// Reads vocab.txt as HF does: one token per line, id = line number,
  /// trailing whitespace trimmed. Throws std::runtime_error naming the file
  /// when it cannot be read.
  static std::vector<std::pair<std::string, int64_t>> read_vocab_file(
      const std::filesystem::path& path);

  void tokenize(std::string_view word, std::vector<Token>& out) const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  std::optional<std::string_view> id_to_token(int64_t id) const override;
  size_t vocab_size() const override { return vocab_.size(); }
  /// The options it was built with.
  const WordPieceOptions& options() const { return options_; }

 private:
  struct Entry {
    int64_t id;
    std::string_view token;  // the full entry, "##" prefix included
  };
  using Map = std::unordered_map<std::string_view, Entry>;
  WordPieceOptions options_;
  // Every token's text, back to back; the maps hold views into it, which is
  // what lets lookups take a string_view without allocating (C++17 has no
  // heterogeneous lookup for std::string keys).
  std::string arena_;
  Map vocab_;
  // Tokens that start with the prefix, keyed without it: looking up a
  // continuation piece needs no "##" + piece concatenation.
  Map continuation_;
  std::unordered_map<int64_t, std::string_view> by_id_;
  Token unk_{};
  size_t max_piece_bytes_ = 0;         // longest key of vocab_
  size_t max_continuation_bytes_ = 0;  // longest key of continuation_
};

}  // namespace peftcpp::data
