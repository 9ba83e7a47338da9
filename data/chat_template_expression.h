#pragma once
// The expression half of the chat template parser: a cursor over the tokens
// and jinja2's expression grammar, from loosest to tightest binding:
//   a if cond else b; or; and; not; comparisons, in, not in; + -; ~;
//   * / // %; **; unary - +; then primary with .attr, [item], [a:b:c],
//   (call) and the filter chain (| filter(args), is [not] test args).
// The statement parser (chat_template_parser.cpp) builds on it.

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "data/chat_template_ast.h"
#include "data/chat_template_lexer.h"

namespace peftcpp::data::jinja {

/// Token cursor plus expression parsing; throws std::runtime_error
/// "[chat_template] expected ..., got ... at line L column C".
class ExpressionParser {
 public:
  explicit ExpressionParser(const std::string& source)
      : source_(source), tokens_(tokenize_template(source)) {}

 protected:
  using TT = Token::Type;

  [[noreturn]] void fail(std::string_view expected, const Token& at) const;

  const Token& peek(size_t ahead = 0) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  const Token& next() {
    const Token& t = peek();
    if (pos_ < tokens_.size() - 1)
      ++pos_;
    return t;
  }
  bool is_op(const char* op, size_t ahead = 0) const {
    return peek(ahead).type == TT::kOp && peek(ahead).text == op;
  }
  bool is_name(const char* name, size_t ahead = 0) const {
    return peek(ahead).type == TT::kName && peek(ahead).text == name;
  }
  bool skip_op(const char* op) {
    if (!is_op(op))
      return false;
    next();
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name))
      return false;
    next();
    return true;
  }
  void expect_op(const char* op) {
    if (!skip_op(op))
      fail(std::string("'") + op + "'", peek());
  }
  std::string expect_name(std::string_view what) {
    if (peek().type != TT::kName)
      fail(what, peek());
    return next().text;
  }
  void expect_block_end() {
    if (peek().type != TT::kBlockEnd)
      fail("the end of the statement '%}'", peek());
    next();
  }

  /// expression ("," expression)*: a tuple when there is a comma.
  ExprPtr parse_tuple(bool with_condexpr);
  /// One expression; without condexpr, a trailing "if" is left alone (for
  /// loop filters and if tests).
  ExprPtr parse_expression(bool with_condexpr);
  ExprPtr parse_or();
  /// After '(': positional and keyword arguments up to ')'.
  void parse_call_args(Expr& call);

  const std::string& source_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;

 private:
  ExprPtr parse_condexpr();
  ExprPtr binary(Expr::Kind kind, std::string op, ExprPtr a, ExprPtr b,
                 size_t offset);
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  ExprPtr parse_math1();
  ExprPtr parse_concat();
  ExprPtr parse_math2();
  ExprPtr parse_pow();
  ExprPtr parse_unary(bool with_filter);
  ExprPtr parse_primary();
  ExprPtr parse_postfix(ExprPtr node);
  ExprPtr parse_subscript(ExprPtr node, size_t offset);
  ExprPtr parse_filters(ExprPtr node);
};

}  // namespace peftcpp::data::jinja
