#include "data/chat_template_expression.h"

#include <stdexcept>

#include "common/error.h"

namespace peftcpp::data::jinja {

namespace {

using TT = Token::Type;

std::string describe(const Token& t) {
  switch (t.type) {
    case TT::kText:
      return "template text";
    case TT::kVarBegin:
      return "'{{'";
    case TT::kVarEnd:
      return "'}}'";
    case TT::kBlockBegin:
      return "'{%'";
    case TT::kBlockEnd:
      return "'%}'";
    case TT::kString:
      return "a string";
    case TT::kEnd:
      return "the end of the template";
    default:
      return "'" + t.text + "'";
  }
}

ExprPtr make(Expr::Kind kind, size_t offset) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->offset = offset;
  return e;
}

}  // namespace

void ExpressionParser::fail(std::string_view expected, const Token& at) const {
  throw std::runtime_error(error_message(
      "chat_template", expected,
      describe(at) + " at " + describe_position(source_, at.offset)));
}

// expression ("," expression)* -> a tuple when there is a comma.
ExprPtr ExpressionParser::parse_tuple(bool with_condexpr) {
  const size_t offset = peek().offset;
  ExprPtr first = parse_expression(with_condexpr);
  if (!is_op(","))
    return first;
  auto t = make(Expr::Kind::kTuple, offset);
  t->items.push_back(std::move(first));
  while (skip_op(",")) {
    if (peek().type == TT::kVarEnd || peek().type == TT::kBlockEnd ||
        is_op(")"))
      break;  // trailing comma: "(1,)"

    t->items.push_back(parse_expression(with_condexpr));
  }
  return t;
}

ExprPtr ExpressionParser::parse_expression(bool with_condexpr) {
  return with_condexpr ? parse_condexpr() : parse_or();
}

ExprPtr ExpressionParser::parse_condexpr() {
  ExprPtr expr = parse_or();
  while (is_name("if")) {
    const size_t offset = next().offset;
    auto c = make(Expr::Kind::kCond, offset);
    c->a = parse_or();
    c->b = std::move(expr);
    if (skip_name("else"))
      c->c = parse_condexpr();
    expr = std::move(c);
  }
  return expr;
}

ExprPtr ExpressionParser::binary(Expr::Kind kind, std::string op, ExprPtr a,
                                 ExprPtr b, size_t offset) {
  auto e = make(kind, offset);
  e->name = std::move(op);
  e->a = std::move(a);
  e->b = std::move(b);
  return e;
}

ExprPtr ExpressionParser::parse_or() {
  ExprPtr left = parse_and();
  while (is_name("or")) {
    const size_t offset = next().offset;
    left = binary(Expr::Kind::kOr, "or", std::move(left), parse_and(), offset);
  }
  return left;
}

ExprPtr ExpressionParser::parse_and() {
  ExprPtr left = parse_not();
  while (is_name("and")) {
    const size_t offset = next().offset;
    left =
        binary(Expr::Kind::kAnd, "and", std::move(left), parse_not(), offset);
  }
  return left;
}

ExprPtr ExpressionParser::parse_not() {
  if (is_name("not")) {
    auto e = make(Expr::Kind::kUnary, next().offset);
    e->name = "not";
    e->a = parse_not();
    return e;
  }
  return parse_compare();
}

// Chained comparisons (a < b < c) become (a < b) and (b < c) with b
// parsed twice, which is the same for side-effect-free expressions.
ExprPtr ExpressionParser::parse_compare() {
  ExprPtr left = parse_math1();
  ExprPtr result;
  while (true) {
    std::string op;
    const Token& t = peek();
    if (t.type == TT::kOp &&
        (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" ||
         t.text == ">" || t.text == ">=")) {
      op = next().text;
    } else if (is_name("in")) {
      op = next().text;
    } else if (is_name("not") && is_name("in", 1)) {
      next();
      next();
      op = "not in";
    } else {
      break;
    }
    const size_t offset = t.offset;
    const size_t right_start = pos_;
    ExprPtr right = parse_math1();
    ExprPtr cmp = binary(Expr::Kind::kBinary, op, std::move(left),
                         std::move(right), offset);
    result = result ? binary(Expr::Kind::kAnd, "and", std::move(result),
                             std::move(cmp), offset)
                    : std::move(cmp);
    const size_t after = pos_;
    pos_ = right_start;
    left = parse_math1();
    pos_ = after;
  }
  return result ? std::move(result) : std::move(left);
}

ExprPtr ExpressionParser::parse_math1() {
  ExprPtr left = parse_concat();
  while (is_op("+") || is_op("-")) {
    const Token& t = next();
    left = binary(Expr::Kind::kBinary, t.text, std::move(left), parse_concat(),
                  t.offset);
  }
  return left;
}

ExprPtr ExpressionParser::parse_concat() {
  ExprPtr left = parse_math2();
  while (is_op("~")) {
    const Token& t = next();
    left = binary(Expr::Kind::kBinary, "~", std::move(left), parse_math2(),
                  t.offset);
  }
  return left;
}

ExprPtr ExpressionParser::parse_math2() {
  ExprPtr left = parse_pow();
  while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
    const Token& t = next();
    left = binary(Expr::Kind::kBinary, t.text, std::move(left), parse_pow(),
                  t.offset);
  }
  return left;
}

ExprPtr ExpressionParser::parse_pow() {
  ExprPtr left = parse_unary(true);
  while (is_op("**")) {
    const Token& t = next();
    left = binary(Expr::Kind::kBinary, "**", std::move(left), parse_unary(true),
                  t.offset);
  }
  return left;
}

ExprPtr ExpressionParser::parse_unary(bool with_filter) {
  ExprPtr node;
  if (is_op("-") || is_op("+")) {
    const Token& t = next();
    node = make(Expr::Kind::kUnary, t.offset);
    node->name = t.text;
    node->a = parse_unary(false);
  } else {
    node = parse_primary();
  }
  node = parse_postfix(std::move(node));
  if (with_filter)
    node = parse_filters(std::move(node));
  return node;
}

ExprPtr ExpressionParser::parse_primary() {
  const Token& t = peek();
  if (t.type == TT::kName) {
    next();
    if (t.text == "true" || t.text == "True" || t.text == "false" ||
        t.text == "False") {
      auto e = make(Expr::Kind::kLiteral, t.offset);
      e->value = Value::boolean(t.text[0] == 't' || t.text[0] == 'T');
      return e;
    }
    auto e = make(t.text == "none" || t.text == "None" ? Expr::Kind::kLiteral
                                                       : Expr::Kind::kName,
                  t.offset);
    if (e->kind == Expr::Kind::kLiteral)
      e->value = Value::none();
    else
      e->name = t.text;
    return e;
  }
  if (t.type == TT::kString) {
    auto e = make(Expr::Kind::kLiteral, t.offset);
    std::string s = next().text;
    while (peek().type == TT::kString)  // adjacent literals concatenate
      s += next().text;
    e->value = Value::string(std::move(s));
    return e;
  }
  if (t.type == TT::kInt || t.type == TT::kFloat) {
    auto e = make(Expr::Kind::kLiteral, t.offset);
    e->value = t.type == TT::kInt ? Value::integer(t.integer)
                                  : Value::number(t.number);
    next();
    return e;
  }
  if (is_op("(")) {
    next();
    if (skip_op(")"))
      return make(Expr::Kind::kTuple, t.offset);
    ExprPtr inner = parse_tuple(true);
    expect_op(")");
    return inner;
  }
  if (is_op("[") || is_op("{")) {
    const bool is_dict = t.text == "{";
    const char* close = is_dict ? "}" : "]";
    auto e = make(is_dict ? Expr::Kind::kDict : Expr::Kind::kList, t.offset);
    next();
    while (!is_op(close)) {
      if (!e->items.empty())
        expect_op(",");
      if (is_op(close))
        break;
      e->items.push_back(parse_expression(true));
      if (is_dict) {
        expect_op(":");
        e->items.push_back(parse_expression(true));
      }
    }
    next();
    return e;
  }
  fail("an expression", t);
}

ExprPtr ExpressionParser::parse_postfix(ExprPtr node) {
  while (true) {
    const Token& t = peek();
    if (is_op(".")) {
      next();
      const Token& attr = peek();
      if (attr.type == TT::kInt) {
        auto e = make(Expr::Kind::kGetItem, t.offset);
        e->a = std::move(node);
        e->b = make(Expr::Kind::kLiteral, attr.offset);
        e->b->value = Value::integer(attr.integer);
        next();
        node = std::move(e);
      } else {
        auto e = make(Expr::Kind::kGetAttr, t.offset);
        e->a = std::move(node);
        e->name = expect_name("an attribute name after '.'");
        node = std::move(e);
      }
    } else if (is_op("[")) {
      next();
      node = parse_subscript(std::move(node), t.offset);
    } else if (is_op("(")) {
      next();
      auto e = make(Expr::Kind::kCall, t.offset);
      e->a = std::move(node);
      parse_call_args(*e);
      node = std::move(e);
    } else {
      return node;
    }
  }
}

ExprPtr ExpressionParser::parse_subscript(ExprPtr node, size_t offset) {
  ExprPtr parts[3];
  int colons = 0;
  while (!is_op("]")) {
    if (skip_op(":")) {
      if (++colons > 2)
        fail("at most two ':' in a slice", peek());
      continue;
    }
    if (parts[colons])
      fail("']' or ':'", peek());
    parts[colons] = parse_expression(true);
  }
  next();
  if (colons == 0) {
    if (!parts[0])
      fail("an index inside '[]'", peek());
    auto e = make(Expr::Kind::kGetItem, offset);
    e->a = std::move(node);
    e->b = std::move(parts[0]);
    return e;
  }
  auto e = make(Expr::Kind::kSlice, offset);
  e->a = std::move(node);
  e->b = std::move(parts[0]);
  e->c = std::move(parts[1]);
  e->d = std::move(parts[2]);
  return e;
}

// After '(': positional and keyword arguments up to ')'.
void ExpressionParser::parse_call_args(Expr& call) {
  while (!is_op(")")) {
    if (!call.items.empty() || !call.keywords.empty())
      expect_op(",");
    if (is_op(")"))
      break;
    if (is_op("*") || is_op("**"))
      fail(
          "plain or keyword arguments (*args and **kwargs are not "
          "supported)",
          peek());
    if (peek().type == TT::kName && is_op("=", 1)) {
      std::string key = next().text;
      next();
      call.keywords.emplace_back(std::move(key), parse_expression(true));
    } else {
      if (!call.keywords.empty())
        fail("a keyword argument after keyword arguments", peek());
      call.items.push_back(parse_expression(true));
    }
  }
  next();
}

ExprPtr ExpressionParser::parse_filters(ExprPtr node) {
  while (true) {
    if (is_op("|")) {
      const size_t offset = next().offset;
      auto e = make(Expr::Kind::kFilter, offset);
      e->a = std::move(node);
      e->name = expect_name("a filter name after '|'");
      if (skip_op("("))
        parse_call_args(*e);
      node = std::move(e);
    } else if (is_name("is")) {
      const size_t offset = next().offset;
      auto e = make(Expr::Kind::kTest, offset);
      e->negated = skip_name("not");
      e->a = std::move(node);
      e->name = expect_name("a test name after 'is'");
      if (skip_op("(")) {
        parse_call_args(*e);
      } else {
        const Token& t = peek();
        const bool arg_start =
            t.type == TT::kString || t.type == TT::kInt ||
            t.type == TT::kFloat || is_op("[") || is_op("{") ||
            (t.type == TT::kName && t.text != "else" && t.text != "or" &&
             t.text != "and" && t.text != "if" && t.text != "is" &&
             t.text != "in" && t.text != "not");
        if (arg_start)
          e->items.push_back(parse_postfix(parse_primary()));
      }
      node = std::move(e);
    } else {
      return node;
    }
  }
}

}  // namespace peftcpp::data::jinja
