#include "data/chat_template_lexer.h"

#include <cstring>
#include <stdexcept>

#include "common/error.h"
#include "data/tokenizer/unicode.h"

namespace peftcpp::data::jinja {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  explicit Lexer(const std::string& src) : src_(src) {}

  std::vector<Token> run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      const size_t tag = find_tag(pos_);
      if (tag == std::string::npos) {
        push_text(src_.substr(pos_), pos_);
        break;
      }
      const char kind = src_[tag + 1];  // '{', '%' or '#'
      char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (sign != '-' && sign != '+')
        sign = '\0';
      std::string text = src_.substr(pos_, tag - pos_);
      if (sign == '-') {
        size_t end = text.size();
        while (end > 0 && is_space(text[end - 1]))
          --end;
        text.resize(end);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: only spaces between the line start and the tag.
        const size_t l_pos = text.rfind('\n') + 1;  // npos + 1 == 0
        if ((l_pos > 0 || line_starting) && l_pos < text.size() &&
            text.find_first_not_of(" \t\f\v\r", l_pos) == std::string::npos)
          text.resize(l_pos);
      }
      push_text(std::move(text), pos_);
      pos_ = tag + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        line_starting = skip_comment(tag);
      } else if (kind == '%' && try_raw(tag)) {
        line_starting = last_end_newline_;
      } else {
        line_starting = lex_tag(kind == '%', tag);
      }
    }
    tokens_.push_back(Token{Token::Type::kEnd, "", 0, 0, src_.size()});
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void fail(std::string_view expected, std::string_view got,
                         size_t at) const {
    throw std::runtime_error(
        error_message("chat_template", expected,
                      std::string(got) + " at " + describe_position(src_, at)));
  }

  size_t find_tag(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos;
         i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() &&
          (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#'))
        return i;
    }
    return std::string::npos;
  }

  void push_text(std::string text, size_t offset) {
    if (!text.empty())
      tokens_.push_back(
          Token{Token::Type::kText, std::move(text), 0, 0, offset});
  }

  // After the closing of a block or comment: "-X}" eats all whitespace,
  // "+X}" nothing, plain "X}" one newline (trim_blocks). Returns whether
  // what was consumed ends with a newline (jinja's line_starting).
  bool consume_block_suffix(char sign) {
    size_t start = pos_;
    if (sign == '-') {
      while (pos_ < src_.size() && is_space(src_[pos_]))
        ++pos_;
    } else if (sign != '+' && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
    }
    return pos_ > start && src_[pos_ - 1] == '\n';
  }

  bool skip_comment(size_t tag) {
    const size_t body = pos_;
    const size_t end = src_.find("#}", body);
    if (end == std::string::npos)
      fail("'#}' closing the comment", "the end of the template", tag);
    char sign = '\0';
    if (end > body && (src_[end - 1] == '-' || src_[end - 1] == '+'))
      sign = src_[end - 1];
    pos_ = end + 2;
    return consume_block_suffix(sign);
  }

  // {% raw %}...{% endraw %}: the body is text, tags in it are not parsed.
  bool try_raw(size_t tag) {
    size_t p = pos_;
    while (p < src_.size() && is_space(src_[p]))
      ++p;
    if (src_.compare(p, 3, "raw") != 0 ||
        (p + 3 < src_.size() &&
         (is_name_start(src_[p + 3]) || is_digit(src_[p + 3]))))
      return false;
    p += 3;
    while (p < src_.size() && is_space(src_[p]))
      ++p;
    char sign = '\0';
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+'))
      sign = src_[p++];
    if (src_.compare(p, 2, "%}") != 0)
      return false;
    pos_ = p + 2;
    if (sign == '-') {
      while (pos_ < src_.size() && is_space(src_[pos_]))
        ++pos_;
    }
    for (size_t t = find_tag(pos_); t != std::string::npos;
         t = find_tag(t + 1)) {
      if (src_[t + 1] != '%')
        continue;
      size_t q = t + 2;
      char begin_sign = '\0';
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+'))
        begin_sign = src_[q++];
      while (q < src_.size() && is_space(src_[q]))
        ++q;
      if (src_.compare(q, 6, "endraw") != 0)
        continue;
      q += 6;
      while (q < src_.size() && is_space(src_[q]))
        ++q;
      char end_sign = '\0';
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+'))
        end_sign = src_[q++];
      if (src_.compare(q, 2, "%}") != 0)
        continue;
      std::string text = src_.substr(pos_, t - pos_);
      if (begin_sign == '-') {
        while (!text.empty() && is_space(text.back()))
          text.pop_back();
      }
      push_text(std::move(text), pos_);
      pos_ = q + 2;
      last_end_newline_ = consume_block_suffix(end_sign);
      return true;
    }
    fail("'{% endraw %}' closing the raw block", "the end of the template",
         tag);
  }

  // Tokens of a {{ }} or {% %} tag up to its end; returns line_starting.
  bool lex_tag(bool block, size_t tag) {
    tokens_.push_back(
        Token{block ? Token::Type::kBlockBegin : Token::Type::kVarBegin,
              block ? "{%" : "{{", 0, 0, tag});
    std::vector<char> balance;
    const char close = block ? '%' : '}';
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_]))
        ++pos_;
      if (pos_ >= src_.size()) {
        fail(block ? "'%}' closing the tag" : "'}}' closing the tag",
             "the end of the template", tag);
      }
      if (balance.empty()) {
        const size_t at = pos_;
        char sign = '\0';
        size_t p = pos_;
        if ((src_[p] == '-' || (block && src_[p] == '+')) &&
            p + 1 < src_.size() && src_[p + 1] == close)
          sign = src_[p++];
        if (src_[p] == close && p + 1 < src_.size() && src_[p + 1] == '}') {
          pos_ = p + 2;
          tokens_.push_back(
              Token{block ? Token::Type::kBlockEnd : Token::Type::kVarEnd,
                    block ? "%}" : "}}", 0, 0, at});
          if (block)
            return consume_block_suffix(sign);
          if (sign == '-')
            return consume_block_suffix('-');
          return false;
        }
      }
      lex_token(balance);
    }
  }

  void lex_token(std::vector<char>& balance) {
    const size_t at = pos_;
    const char c = src_[pos_];
    if (is_name_start(c)) {
      size_t end = pos_ + 1;
      while (end < src_.size() &&
             (is_name_start(src_[end]) || is_digit(src_[end])))
        ++end;
      tokens_.push_back(
          Token{Token::Type::kName, src_.substr(pos_, end - pos_), 0, 0, at});
      pos_ = end;
    } else if (is_digit(c)) {
      lex_number();
    } else if (c == '\'' || c == '"') {
      lex_string();
    } else {
      static const char* kOps[] = {"//", "**", "==", "!=", ">=", "<=", "+",
                                   "-",  "/",  "*",  "%",  "~",  "[",  "]",
                                   "(",  ")",  "{",  "}",  ">",  "<",  "=",
                                   ".",  ":",  "|",  ",",  ";"};
      for (const char* op : kOps) {
        const size_t n = std::strlen(op);
        if (src_.compare(pos_, n, op) != 0)
          continue;
        if (n == 1 && (c == '(' || c == '[' || c == '{')) {
          balance.push_back(c == '(' ? ')' : (c == '[' ? ']' : '}'));
        } else if (n == 1 && (c == ')' || c == ']' || c == '}')) {
          if (balance.empty() || balance.back() != c)
            fail(balance.empty() ? "a balanced bracket"
                                 : std::string("'") + balance.back() + "'",
                 std::string("'") + c + "'", at);
          balance.pop_back();
        }
        tokens_.push_back(Token{Token::Type::kOp, op, 0, 0, at});
        pos_ += n;
        return;
      }
      fail("a name, number, string or operator", std::string("'") + c + "'",
           at);
    }
  }

  void lex_number() {
    const size_t at = pos_;
    std::string digits;
    auto take_digits = [&] {
      while (pos_ < src_.size() &&
             (is_digit(src_[pos_]) ||
              (src_[pos_] == '_' && pos_ + 1 < src_.size() &&
               is_digit(src_[pos_ + 1])))) {
        if (src_[pos_] != '_')
          digits += src_[pos_];
        ++pos_;
      }
    };
    take_digits();
    bool is_float = false;
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' &&
        is_digit(src_[pos_ + 1])) {
      is_float = true;
      digits += src_[pos_++];
      take_digits();
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t p = pos_ + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-'))
        ++p;
      if (p < src_.size() && is_digit(src_[p])) {
        is_float = true;
        digits += 'e';
        digits.append(src_, pos_ + 1, p - pos_ - 1);
        pos_ = p;
        take_digits();
      }
    }
    Token t{is_float ? Token::Type::kFloat : Token::Type::kInt, digits, 0, 0,
            at};
    if (is_float)
      t.number = std::stod(digits);
    else
      t.integer = std::stoll(digits);
    tokens_.push_back(std::move(t));
  }

  // Python's unicode-escape decoding of the literal's body.
  void lex_string() {
    const size_t at = pos_;
    const char quote = src_[pos_++];
    std::string out;
    while (true) {
      if (pos_ >= src_.size())
        fail("a closing quote of the string", "the end of the template", at);
      const char c = src_[pos_++];
      if (c == quote)
        break;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= src_.size())
        fail("a closing quote of the string", "the end of the template", at);
      const char e = src_[pos_++];
      switch (e) {
        case '\n':
          break;  // line continuation
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'v':
          out += '\v';
          break;
        case 'x':
        case 'u':
        case 'U': {
          const int n = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
          uint32_t cp = 0;
          for (int i = 0; i < n; ++i) {
            const int h = pos_ < src_.size() ? hex_value(src_[pos_]) : -1;
            if (h < 0)
              fail(std::to_string(n) + " hex digits after \\" + e,
                   "a truncated escape", at);
            cp = cp * 16 + static_cast<uint32_t>(h);
            ++pos_;
          }
          unicode::append_utf8(out, static_cast<char32_t>(cp));
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int i = 0; i < 2 && pos_ < src_.size() && src_[pos_] >= '0' &&
                            src_[pos_] <= '7';
                 ++i)
              cp = cp * 8 + static_cast<uint32_t>(src_[pos_++] - '0');
            unicode::append_utf8(out, static_cast<char32_t>(cp));
          } else {
            out += '\\';  // unknown escapes stay as written
            out += e;
          }
      }
    }
    tokens_.push_back(Token{Token::Type::kString, std::move(out), 0, 0, at});
  }

  const std::string& src_;
  size_t pos_ = 0;
  bool last_end_newline_ = false;
  std::vector<Token> tokens_;
};

}  // namespace

std::string normalize_template_source(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n')
        ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n')
    out.pop_back();
  return out;
}

std::vector<Token> tokenize_template(const std::string& source) {
  return Lexer(source).run();
}

std::string describe_position(const std::string& source, size_t offset) {
  size_t line = 1, column = 1;
  for (size_t i = 0; i < offset && i < source.size(); ++i) {
    if (source[i] == '\n') {
      ++line;
      column = 1;
    } else if ((static_cast<unsigned char>(source[i]) & 0xC0) != 0x80) {
      ++column;
    }
  }
  return "line " + std::to_string(line) + " column " + std::to_string(column);
}

}  // namespace peftcpp::data::jinja
