#include "data/tokenizer/unicode.h"

#include <utf8proc.h>

#include <algorithm>
#include <iterator>

namespace peftcpp::data::unicode {

namespace {

struct CodeRange {
  char32_t first, last;
};

// Code points first..last (every `stride`-th) lowercase to cp + delta.
struct CaseRun {
  char32_t first, last;
  int32_t delta;
  uint8_t stride;
};

struct CombiningRun {
  char32_t first, last;
  uint8_t ccc;
};

// kDecompositionData[offset .. offset + size) is the full NFD of `cp`.
struct Decomposition {
  char32_t cp;
  uint16_t offset;
  uint8_t size;
};

#include "data/tokenizer/unicode_tables.inc"

template <size_t N>
bool in_ranges(const CodeRange (&table)[N], char32_t cp) {
  // upper_bound on `first`, then check the range just before it.
  const CodeRange* it = std::upper_bound(
      std::begin(table), std::end(table), cp,
      [](char32_t v, const CodeRange& r) { return v < r.first; });
  return it != std::begin(table) && cp <= (it - 1)->last;
}

uint8_t combining_class(char32_t cp) {
  if (cp < 0x300)
    return 0;  // nothing below U+0300 combines
  const CombiningRun* it = std::upper_bound(
      std::begin(kCombiningClass), std::end(kCombiningClass), cp,
      [](char32_t v, const CombiningRun& r) { return v < r.first; });
  if (it == std::begin(kCombiningClass) || cp > (it - 1)->last)
    return 0;
  return (it - 1)->ccc;
}

// Hangul syllables decompose arithmetically (Unicode 3.12).
constexpr char32_t kHangulBase = 0xAC00, kHangulCount = 11172;
constexpr char32_t kLeadBase = 0x1100, kVowelBase = 0x1161;
constexpr char32_t kTrailBase = 0x11A7;
constexpr char32_t kVowelCount = 21, kTrailCount = 28;

void append_decomposition(std::vector<char32_t>& out, char32_t cp) {
  if (cp >= kHangulBase && cp < kHangulBase + kHangulCount) {
    const char32_t s = cp - kHangulBase;
    out.push_back(kLeadBase + s / (kVowelCount * kTrailCount));
    out.push_back(kVowelBase + (s % (kVowelCount * kTrailCount)) / kTrailCount);
    if (s % kTrailCount != 0)
      out.push_back(kTrailBase + s % kTrailCount);
    return;
  }
  if (cp >= 0xC0) {
    const Decomposition* it = std::lower_bound(
        std::begin(kDecomposition), std::end(kDecomposition), cp,
        [](const Decomposition& d, char32_t v) { return d.cp < v; });
    if (it != std::end(kDecomposition) && it->cp == cp) {
      out.insert(out.end(), kDecompositionData + it->offset,
                 kDecompositionData + it->offset + it->size);
      return;
    }
  }
  out.push_back(cp);
}

}  // namespace

char32_t next_code_point(std::string_view text, size_t& i) {
  const auto b = static_cast<unsigned char>(text[i]);
  if (b < 0x80) {
    ++i;
    return b;
  }
  utf8proc_int32_t cp = 0;
  const utf8proc_ssize_t n = utf8proc_iterate(
      reinterpret_cast<const utf8proc_uint8_t*>(text.data() + i),
      static_cast<utf8proc_ssize_t>(text.size() - i), &cp);
  if (n <= 0) {  // invalid byte: replace it and resync on the next one
    ++i;
    return 0xFFFD;
  }
  i += static_cast<size_t>(n);
  return static_cast<char32_t>(cp);
}

std::vector<char32_t> decode_utf8(std::string_view text) {
  std::vector<char32_t> out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();)
    out.push_back(next_code_point(text, i));
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
    return;
  }
  utf8proc_uint8_t buf[4];
  const utf8proc_ssize_t n =
      utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

std::string encode_utf8(const std::vector<char32_t>& cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t cp : cps)
    append_utf8(out, cp);
  return out;
}

bool is_valid_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t before = i;
    if (next_code_point(text, i) == 0xFFFD && i == before + 1)
      return false;
  }
  return true;
}

std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();)
    append_utf8(out, next_code_point(text, i));
  return out;
}

size_t count_code_points(std::string_view text) {
  size_t n = 0;
  for (char c : text)
    n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

bool is_whitespace(char32_t cp) {
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool is_other(char32_t cp) {
  return in_ranges(kOther, cp);
}

bool is_punctuation(char32_t cp) {
  return in_ranges(kPunctuation, cp);
}

bool is_nonspacing_mark(char32_t cp) {
  return cp >= 0x300 && in_ranges(kNonspacingMark, cp);
}

bool is_chinese_char(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

void append_lowercase(std::vector<char32_t>& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    return;
  }
  if (cp == 0x130) {  // the one multi-char mapping (SpecialCasing.txt)
    out.push_back(U'i');
    out.push_back(0x307);
    return;
  }
  const CaseRun* it = std::upper_bound(
      std::begin(kLowercase), std::end(kLowercase), cp,
      [](char32_t v, const CaseRun& r) { return v < r.first; });
  if (it != std::begin(kLowercase)) {
    const CaseRun& r = *(it - 1);
    if (cp <= r.last && (cp - r.first) % r.stride == 0) {
      out.push_back(static_cast<char32_t>(static_cast<int32_t>(cp) + r.delta));
      return;
    }
  }
  out.push_back(cp);
}

std::vector<char32_t> nfd(const std::vector<char32_t>& cps) {
  std::vector<char32_t> out;
  out.reserve(cps.size() + cps.size() / 2);
  for (char32_t cp : cps)
    append_decomposition(out, cp);
  // Canonical ordering: a stable sort of each run of non-starters by class.
  // Runs are a handful of marks, so insertion sort is the right tool.
  for (size_t i = 1; i < out.size(); ++i) {
    const uint8_t c = combining_class(out[i]);
    if (c == 0)
      continue;
    size_t j = i;
    while (j > 0) {
      const uint8_t prev = combining_class(out[j - 1]);
      if (prev == 0 || prev <= c)
        break;
      std::swap(out[j - 1], out[j]);
      --j;
    }
  }
  return out;
}

bool is_word_char(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
           (cp >= '0' && cp <= '9') || cp == '_';
  }
  if (cp == 0x200C || cp == 0x200D)
    return true;  // Join_Control
  // Other_Alphabetic symbols: circled and squared Latin letters.
  if ((cp >= 0x24B6 && cp <= 0x24E9) || (cp >= 0x1F130 && cp <= 0x1F149) ||
      (cp >= 0x1F150 && cp <= 0x1F169) || (cp >= 0x1F170 && cp <= 0x1F189)) {
    return true;
  }
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

}  // namespace peftcpp::data::unicode
