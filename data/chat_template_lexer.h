#pragma once
// Splits a chat template into tokens the way jinja2's lexer does under
// transformers' environment (trim_blocks=True, lstrip_blocks=True,
// keep_trailing_newline=False):
//   - "\r\n" and "\r" become "\n"; one trailing newline is dropped;
//   - "{%-" / "{{-" / "{#-" strip all whitespace before the tag, "-%}" /
//     "-}}" / "-#}" all whitespace after it;
//   - trim_blocks drops the first newline after "%}" and "#}";
//   - lstrip_blocks drops spaces and tabs between a line start and "{%" or
//     "{#" (not "{{"); "{%+" / "+%}" turn these two off for one tag;
//   - comments vanish, {% raw %}...{% endraw %} is text.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace peftcpp::data::jinja {

/// One token of the template.
struct Token {
  enum class Type {
    kText,        // literal template text
    kVarBegin,    // {{
    kVarEnd,      // }}
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kName,
    kString,  // text holds the decoded value
    kInt,
    kFloat,
    kOp,  // text holds the operator ("==", "(", "|", ...)
    kEnd
  };
  Type type;
  std::string text;
  int64_t integer = 0;
  double number = 0;
  /// Byte offset in the normalized source, for line/column in messages.
  size_t offset = 0;
};

/// The template source after newline normalization (offsets refer to it).
std::string normalize_template_source(std::string_view source);

/// Tokens of a normalized source; throws for unterminated tags, comments and
/// strings and for characters that start no token.
std::vector<Token> tokenize_template(const std::string& source);

/// "line L column C" of a byte offset.
std::string describe_position(const std::string& source, size_t offset);

}  // namespace peftcpp::data::jinja
