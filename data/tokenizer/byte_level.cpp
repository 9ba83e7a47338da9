#include "data/tokenizer/byte_level.h"

#include <array>
#include <unordered_map>

#include "data/tokenizer/regex_split.h"
#include "data/tokenizer/unicode.h"

namespace peftcpp::data {

namespace {

// bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other
// 68 bytes take the code points from U+0100 on, in byte order.
struct ByteTables {
  std::array<std::string, 256> char_of;
  std::unordered_map<char32_t, unsigned char> byte_of;
  ByteTables() {
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const char32_t cp = printable ? static_cast<char32_t>(b) : next++;
      unicode::append_utf8(char_of[b], cp);
      byte_of[cp] = static_cast<unsigned char>(b);
    }
  }
};

const ByteTables& tables() {
  static const ByteTables kTables;
  return kTables;
}

bool is_cont(unsigned char b) {
  return (b & 0xC0) == 0x80;
}

// Length of the valid UTF-8 sequence at s[i], or 0 with `bad` set to the
// length of the invalid prefix Rust's Utf8Chunks reports (at least 1).
size_t valid_sequence_at(std::string_view s, size_t i, size_t& bad) {
  const auto at = [&](size_t k) -> int {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : -1;
  };
  const int b = at(0);
  if (b < 0x80)
    return 1;
  int lo = 0x80, hi = 0xBF, width = 0;
  if (b >= 0xC2 && b <= 0xDF) {
    width = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    width = 3;
    if (b == 0xE0)
      lo = 0xA0;
    if (b == 0xED)
      hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    width = 4;
    if (b == 0xF0)
      lo = 0x90;
    if (b == 0xF4)
      hi = 0x8F;
  } else {
    bad = 1;
    return 0;
  }
  const int second = at(1);
  if (second < lo || second > hi) {
    bad = 1;
    return 0;
  }
  for (int k = 2; k < width; ++k) {
    const int c = at(k);
    if (c < 0 || !is_cont(static_cast<unsigned char>(c))) {
      bad = static_cast<size_t>(k);
      return 0;
    }
  }
  return static_cast<size_t>(width);
}

}  // namespace

std::string_view byte_level_char(unsigned char b) {
  return tables().char_of[b];
}

std::string to_byte_level(std::string_view bytes) {
  const auto& t = tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes)
    out += t.char_of[static_cast<unsigned char>(c)];
  return out;
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t bad = 0;
    const size_t n = valid_sequence_at(s, i, bad);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      i += bad;
    }
  }
  return out;
}

ByteLevelPreTokenizer::ByteLevelPreTokenizer(bool add_prefix_space,
                                             bool use_regex)
    : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}

void ByteLevelPreTokenizer::pre_tokenize(std::string_view text,
                                         PreTokenized& out) const {
  static const Regex kGpt2(kGpt2Pattern, "ByteLevel");
  if (add_prefix_space_ && !text.empty() && text.front() != ' ') {
    text = out.storage.emplace_back(" " + std::string(text));
  }
  std::vector<std::string_view> words;
  if (use_regex_) {
    split_spans(text, cover_with_gaps(text.size(), kGpt2.find_all(text)),
                SplitBehavior::kIsolated, words);
  } else if (!text.empty()) {
    words.push_back(text);
  }
  for (std::string_view w : words)
    out.words.push_back(out.storage.emplace_back(to_byte_level(w)));
}

std::vector<std::string> ByteLevelDecoder::decode_chain(
    std::vector<std::string> tokens) const {
  const auto& t = tables();
  std::string bytes;
  for (const std::string& token : tokens) {
    const size_t start = bytes.size();
    bool all_mapped = true;
    for (size_t i = 0; i < token.size();) {
      const auto it = t.byte_of.find(unicode::next_code_point(token, i));
      if (it == t.byte_of.end()) {
        all_mapped = false;
        break;
      }
      bytes += static_cast<char>(it->second);
    }
    if (!all_mapped) {
      bytes.resize(start);
      bytes += token;
    }
  }
  return {utf8_lossy(bytes)};
}

}  // namespace peftcpp::data
