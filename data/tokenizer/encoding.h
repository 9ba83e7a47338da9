#pragma once
// The result of tokenizing one input (a sequence or a pair): what a model
// consumes (ids, type ids, attention mask) plus what a human reads (tokens).
// Field by field the same as Hugging Face tokenizers' Encoding.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace peftcpp::data {

/// Which end of a sequence truncation removes from and padding adds to.
enum class Side { kRight, kLeft };

/// Token ids and their companions, all of the same length.
struct Encoding {
  /// Vocabulary ids (input_ids).
  std::vector<int64_t> ids;
  /// Segment ids (token_type_ids): 0 for the first sequence, 1 for the pair.
  std::vector<int64_t> type_ids;
  /// 1 for real tokens, 0 for padding.
  std::vector<int64_t> attention_mask;
  /// 1 for tokens added by the post-processor or padding, 0 for text tokens
  /// (a literal "[SEP]" typed in the text counts as text, as in HF).
  std::vector<int64_t> special_tokens_mask;
  /// The token strings, e.g. "[CLS]", "hello", "##ing".
  std::vector<std::string> tokens;

  /// Number of tokens.
  size_t size() const { return ids.size(); }

  /// Appends one token.
  void push_back(int64_t id, std::string token, int64_t type_id,
                 int64_t special);

  /// Appends all of `other`.
  void append(const Encoding& other);

  /// Keeps at most `max_length` tokens, dropping from `side`.
  void truncate(size_t max_length, Side side);

  /// Pads up to `length` with the given token (no-op when already longer).
  void pad(size_t length, int64_t pad_id, int64_t pad_type_id,
           const std::string& pad_token, Side side);
};

}  // namespace peftcpp::data
