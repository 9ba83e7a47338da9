#pragma once
// Added tokens ("[CLS]", "[MASK]", user-added words): strings that are cut
// out of the text before normalization and the model ever see it, as HF
// tokenizers' AddedVocabulary does, so a literal "[SEP]" in the input
// becomes the [SEP] token instead of "[", "sep", "]".

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace peftcpp::data {

class Model;
class Normalizer;

/// One added token, with the matching flags of tokenizer.json.
struct AddedToken {
  /// The text to match.
  std::string content;
  /// Match only when not inside a word (neighbours are not \w).
  bool single_word = false;
  /// Swallow the whitespace before the match.
  bool lstrip = false;
  /// Swallow the whitespace after the match.
  bool rstrip = false;
  /// Match on normalized text (content normalized too) instead of raw text.
  bool normalized = true;
  /// A special token: skipped by decode(skip_special_tokens=true).
  bool special = false;

  bool operator==(const AddedToken& o) const;
};

/// A byte range of a string and, for a match, the added token's id.
struct AddedSplit {
  /// First byte.
  size_t begin;
  /// One past the last byte.
  size_t end;
  /// Id of the matched added token; unset for text between matches.
  std::optional<int64_t> id;
};

/// The added tokens of a tokenizer and their matching (leftmost-longest).
class AddedVocabulary {
 public:
  /// Adds tokens as HF's add_tokens does: an existing id (added or model
  /// vocabulary) is reused, otherwise ids continue after the vocabulary.
  /// `normalizer` (may be null) normalizes the content of normalized tokens.
  void add(const std::vector<AddedToken>& tokens, const Model& model,
           const Normalizer* normalizer);

  /// Id of an added token by content.
  std::optional<int64_t> token_to_id(std::string_view content) const;
  /// Text of an added token by id (normalized form for normalized tokens).
  std::optional<std::string> id_to_token(int64_t id) const;
  /// Whether `content` is a special added token.
  bool is_special(std::string_view content) const;
  /// Number of added tokens.
  size_t size() const { return by_id_.size(); }
  /// Contents of all added tokens with their ids.
  const std::unordered_map<std::string, int64_t>& contents() const {
    return by_content_;
  }

  /// Splits `text` into added-token matches and the text between them,
  /// matching the normalized or the non-normalized tokens. Empty text gives
  /// one empty split.
  std::vector<AddedSplit> split(std::string_view text, bool normalized) const;

 private:
  // A byte trie over the patterns; enough for the handful of added tokens a
  // tokenizer has, and leftmost-longest falls out of scanning start points
  // left to right and keeping the longest match at the first that has one.
  struct Trie {
    struct Node {
      std::vector<std::pair<unsigned char, int32_t>> next;
      int64_t id = -1;
    };
    std::vector<Node> nodes;
    bool first_byte[256] = {};
    void insert(std::string_view pattern, int64_t id);
    bool empty() const { return nodes.size() <= 1; }
    // Longest match starting at `at`: its end, or 0 when none.
    size_t longest_at(std::string_view text, size_t at, int64_t& id) const;
  };

  void rebuild_tries();

  std::unordered_map<std::string, int64_t> by_content_;
  std::unordered_map<int64_t, AddedToken> by_id_;
  std::unordered_set<std::string> special_;
  std::unordered_map<int64_t, std::string> normalized_content_;
  Trie raw_trie_, normalized_trie_;
};

}  // namespace peftcpp::data
