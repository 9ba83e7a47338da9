#pragma once
// UTF-8 decoding and the Unicode character classes that Hugging Face
// tokenizers' normalizers and pre-tokenizers test (whitespace, control,
// punctuation, CJK), answered from utf8proc's tables.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace peftcpp::data::unicode {

/// Decodes UTF-8 into code points. Invalid bytes become U+FFFD, as Rust's
/// String::from_utf8_lossy does (HF tokenizers only ever see valid UTF-8,
/// since Python strings are re-encoded before reaching Rust).
std::vector<char32_t> decode_utf8(std::string_view text);

/// Appends the UTF-8 encoding of `cp` to `out`.
void append_utf8(std::string& out, char32_t cp);

/// Encodes code points as UTF-8.
std::string encode_utf8(const std::vector<char32_t>& cps);

/// Rust's char::is_whitespace (White_Space property).
bool is_whitespace(char32_t cp);

/// Rust's char::is_control (general category Cc).
bool is_control(char32_t cp);

/// Unicode general category starting with P (Pc, Pd, Pe, Pf, Pi, Po, Ps).
bool is_unicode_punctuation(char32_t cp);

/// Unicode general category Mn (non-spacing mark), removed by strip_accents.
bool is_nonspacing_mark(char32_t cp);

/// General categories C* other than Cc that BertNormalizer's clean_text
/// treats as control: Cf, Co, Cn, Cs (tabs, newlines and CR excluded).
bool is_other_control(char32_t cp);

/// The CJK Unified Ideograph blocks that BERT surrounds with spaces.
bool is_chinese_char(char32_t cp);

}  // namespace peftcpp::data::unicode
