#include "data/chat_template_render.h"

#include <stdexcept>

#include "common/error.h"
#include "data/chat_template_builtins.h"
#include "data/chat_template_lexer.h"

namespace peftcpp::data::jinja {

namespace {

// An error that already names its position in the template.
class LocatedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail_at(const std::string& source, size_t offset,
                          std::string_view expected, std::string_view got) {
  throw LocatedError(error_message(
      "chat_template", expected,
      std::string(got) + " at " + describe_position(source, offset)));
}

// Variables of one scope: the template's top level, one loop iteration or
// one macro call. Lookups walk up to the parent (jinja's scoping: a set
// inside a loop body is gone at the next iteration and after the loop).
struct Frame {
  const Frame* parent = nullptr;
  std::vector<std::pair<std::string, Value>> vars;

  const Value* find(const std::string& name) const {
    for (const Frame* f = this; f != nullptr; f = f->parent) {
      for (const auto& [k, v] : f->vars) {
        if (k == name)
          return &v;
      }
    }
    return nullptr;
  }
  void set(const std::string& name, Value value) {
    for (auto& [k, v] : vars) {
      if (k == name) {
        v = std::move(value);
        return;
      }
    }
    vars.emplace_back(name, std::move(value));
  }
};

enum class Control { kNone, kBreak, kContinue };

class Renderer {
 public:
  Renderer(const std::string& source, const Dict& variables) : source_(source) {
    root_.vars = variables.items;
  }

  std::string run(const Body& body) {
    std::string out;
    exec(body, root_, out);
    return out;
  }

 private:
  Control exec(const Body& body, Frame& frame, std::string& out) {
    for (const StmtPtr& s : body) {
      const Control c = exec(*s, frame, out);
      if (c != Control::kNone)
        return c;
    }
    return Control::kNone;
  }

  Control exec(const Stmt& s, Frame& frame, std::string& out) {
    switch (s.kind) {
      case Stmt::Kind::kText:
        out += s.text;
        break;
      case Stmt::Kind::kOutput:
        out += to_str(eval(*s.expr, frame));
        break;
      case Stmt::Kind::kIf:
        for (size_t i = 0; i < s.conditions.size(); ++i) {
          if (eval(*s.conditions[i], frame).truthy())
            return exec(s.bodies[i], frame, out);
        }
        return exec(s.else_body, frame, out);
      case Stmt::Kind::kFor:
        return exec_for(s, frame, out);
      case Stmt::Kind::kSet:
        assign(s, eval(*s.expr, frame), frame);
        break;
      case Stmt::Kind::kSetBlock: {
        std::string captured;
        exec(s.bodies[0], frame, captured);
        frame.set(s.targets[0], Value::string(std::move(captured)));
        break;
      }
      case Stmt::Kind::kMacro:
        frame.set(s.text, make_macro(s));
        break;
      case Stmt::Kind::kBreak:
        return Control::kBreak;
      case Stmt::Kind::kContinue:
        return Control::kContinue;
      case Stmt::Kind::kScope:
        return exec(s.bodies[0], frame, out);
    }
    return Control::kNone;
  }

  void bind(const std::vector<std::string>& targets, const Value& value,
            Frame& frame, size_t offset) {
    if (targets.size() == 1) {
      frame.set(targets[0], value);
      return;
    }
    if (!value.is_list() || value.as_list().size() != targets.size())
      fail_at(source_, offset,
              std::to_string(targets.size()) + " values to unpack",
              value.is_list() ? std::to_string(value.as_list().size())
                              : "an object of type " + value.type_name());
    for (size_t i = 0; i < targets.size(); ++i)
      frame.set(targets[i], value.as_list()[i]);
  }

  void assign(const Stmt& s, const Value& value, Frame& frame) {
    if (s.attribute.empty()) {
      bind(s.targets, value, frame, s.offset);
      return;
    }
    const Value* target = frame.find(s.targets[0]);
    if (target == nullptr || target->kind() != Value::Kind::kNamespace)
      fail_at(
          source_, s.offset,
          "a namespace() to assign '" + s.targets[0] + "." + s.attribute + "'",
          target == nullptr ? "undefined" : target->type_name());
    if (!s.attribute.empty() && s.attribute[0] == '_')
      fail_at(source_, s.offset, "a namespace attribute without leading '_'",
              "'" + s.attribute + "'");
    target->as_dict().set(s.attribute, value);
  }

  Control exec_for(const Stmt& s, Frame& frame, std::string& out) {
    List items = iterate(eval(*s.expr, frame));
    if (s.filter) {
      // The filter sees the loop variables, not `loop`; loop.length counts
      // what passes.
      List kept;
      for (Value& item : items) {
        Frame probe{&frame, {}};
        bind(s.targets, item, probe, s.offset);
        if (eval(*s.filter, probe).truthy())
          kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty())
      return exec(s.else_body, frame, out);
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      Frame iteration{&frame, {}};
      bind(s.targets, items[static_cast<size_t>(i)], iteration, s.offset);
      iteration.set("loop", loop_value(items, i));
      const Control c = exec(s.bodies[0], iteration, out);
      if (c == Control::kBreak)
        break;
    }
    return Control::kNone;
  }

  static Value loop_value(const List& items, int64_t i) {
    const int64_t n = static_cast<int64_t>(items.size());
    auto d = std::make_shared<Dict>();
    d->items = {
        {"index", Value::integer(i + 1)},
        {"index0", Value::integer(i)},
        {"revindex", Value::integer(n - i)},
        {"revindex0", Value::integer(n - i - 1)},
        {"first", Value::boolean(i == 0)},
        {"last", Value::boolean(i == n - 1)},
        {"length", Value::integer(n)},
        {"depth", Value::integer(1)},
        {"depth0", Value::integer(0)},
        {"previtem", i > 0 ? items[static_cast<size_t>(i - 1)]
                           : Value::undefined("there is no previous item")},
        {"nextitem", i + 1 < n ? items[static_cast<size_t>(i + 1)]
                               : Value::undefined("there is no next item")},
        {"cycle", Value::function("loop.cycle",
                                  [i](const CallArgs& a) {
                                    if (a.positional.empty())
                                      throw std::runtime_error(error_message(
                                          "chat_template",
                                          "at least one argument to loop.cycle",
                                          "none"));
                                    return a.positional[static_cast<size_t>(i) %
                                                        a.positional.size()];
                                  })},
    };
    return Value::dict(std::move(d));
  }

  // A macro sees its parameters and the template's top level.
  Value make_macro(const Stmt& s) {
    const Stmt* macro = &s;
    return Value::function(s.text, [this, macro](const CallArgs& a) {
      Frame call{&root_, {}};
      const auto& params = macro->params;
      if (a.positional.size() > params.size())
        throw std::runtime_error(
            error_message("chat_template",
                          "at most " + std::to_string(params.size()) +
                              " arguments to " + macro->text,
                          std::to_string(a.positional.size())));
      for (size_t i = 0; i < params.size(); ++i) {
        const Value* given =
            i < a.positional.size() ? &a.positional[i] : nullptr;
        for (const auto& [k, v] : a.keyword) {
          if (k == params[i].name)
            given = &v;
        }
        if (given != nullptr)
          call.set(params[i].name, *given);
        else if (params[i].default_value)
          call.set(params[i].name, eval(*params[i].default_value, call));
        else
          call.set(params[i].name,
                   Value::undefined("missing argument '" + params[i].name +
                                    "' of macro " + macro->text));
      }
      std::string out;
      exec(macro->bodies[0], call, out);
      return Value::string(std::move(out));
    });
  }

  CallArgs eval_args(const Expr& e, const Frame& frame) {
    CallArgs args;
    args.positional.reserve(e.items.size());
    for (const ExprPtr& x : e.items)
      args.positional.push_back(eval(*x, frame));
    for (const auto& [k, x] : e.keywords)
      args.keyword.emplace_back(k, eval(*x, frame));
    return args;
  }

  Value eval(const Expr& e, const Frame& frame) {
    try {
      return eval_unlocated(e, frame);
    } catch (const TemplateRaised&) {
      throw;
    } catch (const LocatedError&) {
      throw;
    } catch (const std::runtime_error& err) {
      throw LocatedError(std::string(err.what()) + " at " +
                         describe_position(source_, e.offset));
    }
  }

  Value eval_unlocated(const Expr& e, const Frame& frame) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.value;
      case Expr::Kind::kName: {
        if (const Value* v = frame.find(e.name))
          return *v;
        return global_function(e.name);
      }
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        List items;
        items.reserve(e.items.size());
        for (const ExprPtr& x : e.items)
          items.push_back(eval(*x, frame));
        return Value::list(std::move(items), e.kind == Expr::Kind::kTuple);
      }
      case Expr::Kind::kDict: {
        Value d = Value::new_dict();
        for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
          const Value key = eval(*e.items[i], frame);
          if (!key.is_string())
            throw std::runtime_error(
                error_message("chat_template", "str dict keys",
                              "a key of type " + key.type_name()));
          d.as_dict().set(key.as_string(), eval(*e.items[i + 1], frame));
        }
        return d;
      }
      case Expr::Kind::kGetAttr:
        return get_attr(eval(*e.a, frame), e.name);
      case Expr::Kind::kGetItem:
        return get_item(eval(*e.a, frame), eval(*e.b, frame));
      case Expr::Kind::kSlice: {
        auto part = [&](const ExprPtr& x) {
          return x ? eval(*x, frame) : Value::none();
        };
        return slice_value(eval(*e.a, frame), part(e.b), part(e.c), part(e.d));
      }
      case Expr::Kind::kCall: {
        const Value callee = eval(*e.a, frame);
        if (callee.is_undefined())
          fail_undefined(callee);
        if (callee.kind() != Value::Kind::kFunction)
          throw std::runtime_error(
              error_message("chat_template", "a callable",
                            "an object of type " + callee.type_name()));
        return callee.as_function().call(eval_args(e, frame));
      }
      case Expr::Kind::kFilter:
        return apply_filter(e.name, eval(*e.a, frame), eval_args(e, frame));
      case Expr::Kind::kTest:
        return Value::boolean(apply_test(e.name, eval(*e.a, frame),
                                         eval_args(e, frame)) != e.negated);
      case Expr::Kind::kUnary: {
        const Value a = eval(*e.a, frame);
        if (e.name == "not")
          return Value::boolean(!a.truthy());
        return unary_op(e.name, a);
      }
      case Expr::Kind::kBinary:
        return binary_op(e.name, eval(*e.a, frame), eval(*e.b, frame));
      case Expr::Kind::kAnd: {
        Value a = eval(*e.a, frame);
        return a.truthy() ? eval(*e.b, frame) : a;
      }
      case Expr::Kind::kOr: {
        Value a = eval(*e.a, frame);
        return a.truthy() ? a : eval(*e.b, frame);
      }
      case Expr::Kind::kCond:
        if (eval(*e.a, frame).truthy())
          return eval(*e.b, frame);
        return e.c ? eval(*e.c, frame)
                   : Value::undefined(
                         "the inline if's condition was false "
                         "and it has no else");
    }
    return Value::undefined();
  }

  const std::string& source_;
  Frame root_;
};

void check_expr(const Expr* e, const std::string& source) {
  if (e == nullptr)
    return;
  if (e->kind == Expr::Kind::kFilter && !has_filter(e->name))
    fail_at(source, e->offset, "a known filter (trim, tojson, join, ...)",
            "'" + e->name + "'");
  if (e->kind == Expr::Kind::kTest && !has_test(e->name))
    fail_at(source, e->offset, "a known test (defined, none, string, ...)",
            "'" + e->name + "'");
  for (const Expr* child : {e->a.get(), e->b.get(), e->c.get(), e->d.get()})
    check_expr(child, source);
  for (const ExprPtr& x : e->items)
    check_expr(x.get(), source);
  for (const auto& kv : e->keywords)
    check_expr(kv.second.get(), source);
}

}  // namespace

void check_names(const Body& body, const std::string& source) {
  for (const StmtPtr& s : body) {
    check_expr(s->expr.get(), source);
    check_expr(s->filter.get(), source);
    for (const ExprPtr& c : s->conditions)
      check_expr(c.get(), source);
    for (const Param& p : s->params)
      check_expr(p.default_value.get(), source);
    for (const Body& b : s->bodies)
      check_names(b, source);
    check_names(s->else_body, source);
  }
}

std::string render_body(const Body& body, const std::string& source,
                        const Dict& variables) {
  return Renderer(source, variables).run(body);
}

}  // namespace peftcpp::data::jinja
