#pragma once
// The parsed form of a chat template: expressions and statements as plain
// immutable trees, built once by the parser and walked by every render
// (so renders may run on many threads at once).

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/chat_template_value.h"

namespace peftcpp::data::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

/// An expression node; which fields are used depends on `kind`.
struct Expr {
  enum class Kind {
    kLiteral,  // value
    kName,     // name
    kList,     // items
    kTuple,    // items
    kDict,     // items: key, value, key, value, ...
    kGetAttr,  // a.name
    kGetItem,  // a[b]
    kSlice,    // a[b:c:d]; b, c, d may be null
    kCall,     // a(items, keywords)
    kFilter,   // a | name(items, keywords)
    kTest,     // a is [not] name(items); negated
    kUnary,    // op a: "-", "+", "not"
    kBinary,   // a op b: arithmetic, "~", comparisons, "in", "not in"
    kAnd,      // a and b
    kOr,       // a or b
    kCond,     // b if a else c; c may be null (undefined)
  };
  Kind kind;
  /// Byte offset in the source, for messages.
  size_t offset = 0;
  Value value;
  std::string name;  // variable, attribute, filter or test name; operator
  ExprPtr a, b, c, d;
  std::vector<ExprPtr> items;
  std::vector<std::pair<std::string, ExprPtr>> keywords;
  bool negated = false;
};

/// A macro parameter and its default (null: required).
struct Param {
  std::string name;
  ExprPtr default_value;
};

/// A statement node; which fields are used depends on `kind`.
struct Stmt {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // conditions[i] guards bodies[i]; else_body
    kFor,       // for targets in expr [if filter]: bodies[0]; else_body
    kSet,       // set targets = expr (attribute: target.attribute = expr)
    kSetBlock,  // {% set targets[0] %}bodies[0]{% endset %}
    kMacro,     // macro name(params): bodies[0]
    kBreak,
    kContinue,
    kScope,  // bodies[0] rendered in place ({% generation %})
  };
  Kind kind;
  size_t offset = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<std::string> targets;
  std::string attribute;
  std::vector<ExprPtr> conditions;
  std::vector<Body> bodies;
  Body else_body;
  std::vector<Param> params;
};

}  // namespace peftcpp::data::jinja
