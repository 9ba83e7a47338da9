#pragma once
// Byte-pair encoding (Sennrich et al. 2016), as Hugging Face tokenizers'
// models::BPE runs it: a word starts as its characters and the adjacent
// pair with the lowest merge rank is merged until no listed pair is left.
// Covers GPT-2 / RoBERTa / LLaMA-3 / Qwen2 (byte-level vocabularies) and
// converted SentencePiece BPE (byte_fallback <0xNN> tokens).

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/tokenizer/model.h"

namespace peftcpp::data {

/// BPE options, named as in tokenizer.json.
struct BpeOptions {
  /// Token for characters the vocabulary lacks; unset drops them.
  std::optional<std::string> unk_token;
  /// Prefix of the vocabulary entries that continue a word.
  std::optional<std::string> continuing_subword_prefix;
  /// Suffix of the vocabulary entries that end a word.
  std::optional<std::string> end_of_word_suffix;
  /// Fuse consecutive unknown characters into one unk_token.
  bool fuse_unk = false;
  /// Spell unknown characters as <0xNN> byte tokens when all exist.
  bool byte_fallback = false;
  /// A word that is itself in the vocabulary is one token, unmerged
  /// (LLaMA-3).
  bool ignore_merges = false;
};

/// HF `models::BPE` (without dropout). Thread-safe; words are cached.
class Bpe : public Model {
 public:
  /// A model over `vocab` (token, id) pairs and `merges` (pairs of tokens
  /// in rank order). Throws std::runtime_error when a merge's parts or its
  /// result are not in the vocabulary.
  Bpe(const std::vector<std::pair<std::string, int64_t>>& vocab,
      const std::vector<std::pair<std::string, std::string>>& merges,
      BpeOptions options);
  ~Bpe() override;
  // The maps view tokens_, so a copy would point into the original.
  Bpe(const Bpe&) = delete;
  Bpe& operator=(const Bpe&) = delete;

  /// Builds a model from a tokenizer.json "model" object of type BPE.
  /// Merges may be "a b" strings or ["a", "b"] pairs. Throws
  /// std::runtime_error naming `where` for malformed values and for a
  /// dropout (sampling would make encodings irreproducible).
  static std::unique_ptr<Bpe> from_json(const nlohmann::json& j,
                                        std::string_view where);

  void tokenize(std::string_view word, std::vector<Token>& out) const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  std::optional<std::string_view> id_to_token(int64_t id) const override;
  size_t vocab_size() const override { return vocab_.size(); }
  /// The options it was built with.
  const BpeOptions& options() const { return options_; }

 private:
  struct Merge {
    uint32_t rank;
    int64_t new_id;
  };
  // The merged ids of one word (the cacheable part of tokenize).
  std::vector<int64_t> merge_word(std::string_view word) const;
  void merge_all(std::vector<int64_t>& ids) const;
  const Merge* find_merge(int64_t a, int64_t b) const;

  BpeOptions options_;
  std::deque<std::string> tokens_;  // owns the text the maps view
  std::unordered_map<std::string_view, int64_t> vocab_;
  std::unordered_map<int64_t, std::string_view> by_id_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<int64_t> unk_id_;
  std::optional<int64_t> byte_ids_[256];  // <0xNN> tokens, for byte_fallback

  struct Cache;
  std::unique_ptr<Cache> cache_;
};

}  // namespace peftcpp::data
