#pragma once
// GPT-2's byte-level trick: every byte of the UTF-8 text is shown as one
// printable character (bytes_to_unicode), so a BPE vocabulary over those
// characters covers any input without an unknown token. The pre-tokenizer
// maps text to those characters, the decoder maps them back.

#include <string>
#include <string_view>
#include <vector>

#include "data/tokenizer/decoder.h"
#include "data/tokenizer/pre_tokenizer.h"

namespace peftcpp::data {

/// The character (as UTF-8) that byte `b` is shown as (GPT-2's
/// bytes_to_unicode).
std::string_view byte_level_char(unsigned char b);

/// `bytes` with every byte replaced by its byte-level character.
std::string to_byte_level(std::string_view bytes);

/// Rust's String::from_utf8_lossy: each maximal invalid subsequence
/// becomes one U+FFFD.
std::string utf8_lossy(std::string_view bytes);

/// GPT-2's pre-tokenization pattern (contractions, letters, numbers,
/// other symbols, each optionally after one space, then whitespace).
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

/// HF `pre_tokenizers::ByteLevel`: optionally prepends a space, splits
/// with GPT-2's pattern (use_regex) and maps the bytes of each word to
/// byte-level characters.
class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  /// A pre-tokenizer with tokenizer.json's options.
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex);
  void pre_tokenize(std::string_view text, PreTokenized& out) const override;

 private:
  bool add_prefix_space_;
  bool use_regex_;
};

/// HF `decoders::ByteLevel`: concatenates the tokens, maps byte-level
/// characters back to bytes (a token with any other character keeps its
/// own bytes) and reads the bytes as lossy UTF-8: one output piece.
class ByteLevelDecoder : public Decoder {
 public:
  std::vector<std::string> decode_chain(
      std::vector<std::string> tokens) const override;
};

}  // namespace peftcpp::data
