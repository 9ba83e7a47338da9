#pragma once
// UTF-8 decoding and the Unicode data that Hugging Face tokenizers'
// normalizers and pre-tokenizers use (whitespace, control, punctuation,
// nonspacing marks, lowercase, NFD, CJK).
//
// HF answers these from frozen crates of different ages (unicode_categories
// 0.1.1 from 2016, unicode-normalization-alignments 0.1 from before Unicode
// 13, Rust std's case tables), so no single Unicode database matches it:
// utf8proc (Unicode 15) disagrees on 600+ code points. The class, case and
// NFD tables therefore come from unicode_tables.inc, measured from the
// tokenizers wheel by gen_unicode_tables.py; utf8proc does UTF-8 and the
// regex-style word class only.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace peftcpp::data::unicode {

/// Decodes UTF-8 into code points. Invalid bytes become U+FFFD (Rust's
/// String::from_utf8_lossy; HF itself only ever sees valid UTF-8).
std::vector<char32_t> decode_utf8(std::string_view text);

/// Decodes the code point starting at `text[i]` and advances `i` past it;
/// an invalid byte gives U+FFFD and advances by one.
char32_t next_code_point(std::string_view text, size_t& i);

/// Appends the UTF-8 encoding of `cp` to `out`.
void append_utf8(std::string& out, char32_t cp);

/// Encodes code points as UTF-8.
std::string encode_utf8(const std::vector<char32_t>& cps);

/// True when `text` is well-formed UTF-8 (no surrogates, no overlongs).
bool is_valid_utf8(std::string_view text);

/// `text` with every invalid byte replaced by U+FFFD.
std::string sanitize_utf8(std::string_view text);

/// Number of code points in valid UTF-8 (counts lead bytes).
size_t count_code_points(std::string_view text);

/// Rust's char::is_whitespace (the White_Space property).
bool is_whitespace(char32_t cp);

/// unicode_categories' is_other(): Cc, Cf or Co. BertNormalizer's
/// clean_text removes these, except \t \n \r which it maps to a space.
bool is_other(char32_t cp);

/// ASCII punctuation or a P* category: what BertPreTokenizer isolates.
bool is_punctuation(char32_t cp);

/// General category Mn, which strip_accents drops after NFD.
bool is_nonspacing_mark(char32_t cp);

/// The CJK Unified Ideograph blocks that BERT surrounds with spaces.
bool is_chinese_char(char32_t cp);

/// Rust's char::to_lowercase: appends one code point, or two for U+0130
/// ('İ' -> "i̇"). Contextless: a final Σ becomes σ, never ς, since HF maps
/// characters one at a time.
void append_lowercase(std::vector<char32_t>& out, char32_t cp);

/// Canonical decomposition (NFD) of `cps`, canonically reordered.
std::vector<char32_t> nfd(const std::vector<char32_t>& cps);

/// The regex class \w (alphabetic, marks, digits, connector punctuation,
/// join controls), used by added tokens' single_word rule.
bool is_word_char(char32_t cp);

}  // namespace peftcpp::data::unicode
