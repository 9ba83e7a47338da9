#include "data/chat_template_parser.h"

#include <stdexcept>

#include "common/error.h"
#include "data/chat_template_lexer.h"

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

class Parser {
 public:
  explicit Parser(const std::string& source)
      : source_(source), tokens_(tokenize_template(source)) {}

  Body parse() {
    std::string stop;
    return parse_body({}, "", 0, &stop);
  }

 private:
  [[noreturn]] void fail(std::string_view expected, const Token& at) const {
    throw std::runtime_error(error_message(
        "chat_template", expected,
        describe(at) + " at " + describe_position(source_, at.offset)));
  }

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

  // Statements until a block tag named in `stops`; its name goes to *stop
  // (the tag's remaining tokens are left to the caller).
  Body parse_body(const std::vector<std::string>& stops,
                  const std::string& opener, size_t opener_offset,
                  std::string* stop) {
    Body body;
    while (true) {
      const Token& t = peek();
      if (t.type == TT::kEnd) {
        if (stops.empty())
          return body;
        fail("'{% " + stops.back() + " %}' closing the '" + opener + "' at " +
                 describe_position(source_, opener_offset),
             t);
      }
      if (t.type == TT::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->offset = t.offset;
        s->text = next().text;
        body.push_back(std::move(s));
      } else if (t.type == TT::kVarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kOutput;
        s->offset = next().offset;
        s->expr = parse_tuple(true);
        if (peek().type != TT::kVarEnd)
          fail("the end of the print statement '}}'", peek());
        next();
        body.push_back(std::move(s));
      } else if (t.type == TT::kBlockBegin) {
        const Token& name = peek(1);
        if (name.type == TT::kName) {
          for (const auto& s : stops) {
            if (name.text == s) {
              next();
              next();
              *stop = s;
              return body;
            }
          }
        }
        body.push_back(parse_statement());
      } else {
        fail("template text, '{{' or '{%'", t);
      }
    }
  }

  StmtPtr parse_statement() {
    const size_t offset = next().offset;  // {%
    const Token& name_tok = peek();
    if (name_tok.type != TT::kName)
      fail("a statement name", name_tok);
    const std::string name = next().text;
    auto s = std::make_unique<Stmt>();
    s->offset = offset;
    std::string stop;
    if (name == "if") {
      s->kind = Stmt::Kind::kIf;
      s->conditions.push_back(parse_or());
      expect_block_end();
      while (true) {
        s->bodies.push_back(
            parse_body({"elif", "else", "endif"}, "if", offset, &stop));
        if (stop == "elif") {
          s->conditions.push_back(parse_or());
          expect_block_end();
          continue;
        }
        expect_block_end();
        if (stop == "else")
          s->else_body = parse_body({"endif"}, "if", offset, &stop),
          expect_block_end();
        break;
      }
    } else if (name == "for") {
      s->kind = Stmt::Kind::kFor;
      s->targets = parse_targets();
      if (!skip_name("in"))
        fail("'in' after the loop variables", peek());
      s->expr = parse_tuple(false);
      if (skip_name("if"))
        s->filter = parse_expression(false);
      if (is_name("recursive"))
        fail("a supported for loop (recursive loops are not)", peek());
      expect_block_end();
      ++loop_depth_;
      s->bodies.push_back(parse_body({"else", "endfor"}, "for", offset, &stop));
      --loop_depth_;
      expect_block_end();
      if (stop == "else")
        s->else_body = parse_body({"endfor"}, "for", offset, &stop),
        expect_block_end();
    } else if (name == "set") {
      s->targets = parse_targets();
      if (s->targets.size() == 1 && skip_op(".")) {
        s->attribute = expect_name("an attribute name after '.'");
      }
      if (skip_op("=")) {
        s->kind = Stmt::Kind::kSet;
        s->expr = parse_tuple(true);
        expect_block_end();
      } else {
        if (s->targets.size() != 1 || !s->attribute.empty())
          fail("'=' after the set target", peek());
        s->kind = Stmt::Kind::kSetBlock;
        expect_block_end();
        s->bodies.push_back(parse_body({"endset"}, "set", offset, &stop));
        expect_block_end();
      }
    } else if (name == "macro") {
      s->kind = Stmt::Kind::kMacro;
      s->text = expect_name("a macro name");
      expect_op("(");
      while (!is_op(")")) {
        if (!s->params.empty())
          expect_op(",");
        if (is_op(")"))
          break;
        Param p;
        p.name = expect_name("a macro parameter name");
        if (skip_op("="))
          p.default_value = parse_expression(true);
        s->params.push_back(std::move(p));
      }
      next();
      expect_block_end();
      const int saved_depth = loop_depth_;
      loop_depth_ = 0;
      s->bodies.push_back(parse_body({"endmacro"}, "macro", offset, &stop));
      loop_depth_ = saved_depth;
      expect_block_end();
    } else if (name == "break" || name == "continue") {
      if (loop_depth_ == 0)
        fail("'" + name + "' inside a for loop", name_tok);
      s->kind = name == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      expect_block_end();
    } else if (name == "generation") {
      // transformers' AssistantTracker tag: renders its body in place.
      s->kind = Stmt::Kind::kScope;
      expect_block_end();
      s->bodies.push_back(
          parse_body({"endgeneration"}, "generation", offset, &stop));
      expect_block_end();
    } else {
      fail(
          "a statement (if, for, set, macro, break, continue, generation) "
          "or the end tag of an open block",
          name_tok);
    }
    return s;
  }

  // Loop or set targets: "a", "a, b", "(a, b)".
  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    const bool paren = skip_op("(");
    do {
      names.push_back(expect_name("a variable name"));
    } while (skip_op(","));
    if (paren)
      expect_op(")");
    return names;
  }

  // expression ("," expression)* -> a tuple when there is a comma.
  ExprPtr parse_tuple(bool with_condexpr) {
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

  ExprPtr parse_expression(bool with_condexpr) {
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
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

  ExprPtr binary(Expr::Kind kind, std::string op, ExprPtr a, ExprPtr b,
                 size_t offset) {
    auto e = make(kind, offset);
    e->name = std::move(op);
    e->a = std::move(a);
    e->b = std::move(b);
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      const size_t offset = next().offset;
      left =
          binary(Expr::Kind::kOr, "or", std::move(left), parse_and(), offset);
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      const size_t offset = next().offset;
      left =
          binary(Expr::Kind::kAnd, "and", std::move(left), parse_not(), offset);
    }
    return left;
  }

  ExprPtr parse_not() {
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
  ExprPtr parse_compare() {
    const size_t start = pos_;
    ExprPtr left = parse_math1();
    ExprPtr result;
    while (true) {
      std::string op;
      const Token& t = peek();
      if (t.type == TT::kOp &&
          (t.text == "==" || t.text == "!=" || t.text == "<" ||
           t.text == "<=" || t.text == ">" || t.text == ">=")) {
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
    (void)start;
    return result ? std::move(result) : std::move(left);
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = next();
      left = binary(Expr::Kind::kBinary, t.text, std::move(left),
                    parse_concat(), t.offset);
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      const Token& t = next();
      left = binary(Expr::Kind::kBinary, "~", std::move(left), parse_math2(),
                    t.offset);
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = next();
      left = binary(Expr::Kind::kBinary, t.text, std::move(left), parse_pow(),
                    t.offset);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const Token& t = next();
      left = binary(Expr::Kind::kBinary, "**", std::move(left),
                    parse_unary(true), t.offset);
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
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

  ExprPtr parse_primary() {
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

  ExprPtr parse_postfix(ExprPtr node) {
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

  ExprPtr parse_subscript(ExprPtr node, size_t offset) {
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
  void parse_call_args(Expr& call) {
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

  ExprPtr parse_filters(ExprPtr node) {
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

  const std::string& source_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Body parse_template(const std::string& source) {
  return Parser(source).parse();
}

}  // namespace peftcpp::data::jinja
