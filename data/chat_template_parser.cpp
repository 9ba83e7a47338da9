#include "data/chat_template_parser.h"

#include <stdexcept>

#include "data/chat_template_expression.h"

namespace peftcpp::data::jinja {

namespace {

// Statements over the expression parser: text, {{ }} and the block tags.
class Parser : public ExpressionParser {
 public:
  explicit Parser(const std::string& source) : ExpressionParser(source) {}

  Body parse() {
    std::string stop;
    return parse_body({}, "", 0, &stop);
  }

 private:
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

  int loop_depth_ = 0;
};

}  // namespace

Body parse_template(const std::string& source) {
  return Parser(source).parse();
}

}  // namespace peftcpp::data::jinja
