// parse_run_config: the YAML run configuration of trainers/run_config.h.
// Overrides are applied to the YAML tree before anything is read, so a
// value from the command line and one from the file go through the same
// checks. Every mapping is checked against the schema first: a mistyped key
// must be an error (with the closest key), never a silently kept default.
// Values are checked where they are read, with the key in the message.

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <set>
#include <stdexcept>

#include "common/error.h"
#include "common/text_file.h"
#include "data/dataset/table_file.h"
#include "trainers/run_config.h"
#include "trainers/run_config_reader.h"

namespace peftcpp::trainers {

namespace fs = std::filesystem;
using nlohmann::json;

namespace detail {

const std::string* Context::override_for(const std::string& dotted) const {
  for (std::string key = dotted;;) {
    if (const auto it = overrides.find(key); it != overrides.end())
      return &it->second;
    const size_t dot = key.rfind('.');
    if (dot == std::string::npos)
      return nullptr;
    key.resize(dot);
  }
}

std::string Context::location(const std::string& dotted,
                              const YAML::Node& node) const {
  if (const std::string* text = override_for(dotted))
    return where + ", override \"" + *text + "\"";
  if (node.IsDefined() && !node.Mark().is_null())
    return where + ":" + std::to_string(node.Mark().line + 1);
  // A section an override created ("modle.path=x" made "modle").
  for (const auto& [key, text] : overrides) {
    if (key.rfind(dotted + ".", 0) == 0)
      return where + ", override \"" + text + "\"";
  }
  return where;
}

bool is_null(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull())
    return true;
  if (!node.IsScalar() || node.Tag() == "!")
    return false;
  const std::string& s = node.Scalar();
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

std::optional<int64_t> to_int(const std::string& s) {
  const size_t sign = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (s.size() == sign || s.size() > 18 + sign)
    return std::nullopt;
  for (size_t k = sign; k < s.size(); ++k) {
    if (s[k] < '0' || s[k] > '9')
      return std::nullopt;
  }
  return std::stoll(s);
}

std::optional<bool> to_bool(const std::string& s) {
  if (s == "true" || s == "True" || s == "TRUE")
    return true;
  if (s == "false" || s == "False" || s == "FALSE")
    return false;
  return std::nullopt;
}

bool is_precision(const std::string& name) {
  return name == "float32" || name == "bfloat16" || name == "float16";
}

namespace {

// A value for a message: numbers as written, anything else quoted.
std::string shown(const YAML::Node& node) {
  if (is_null(node))
    return "nothing";
  if (node.IsSequence())
    return "a list";
  if (node.IsMap())
    return "a mapping";
  const std::string& s = node.Scalar();
  if (node.Tag() != "!" && data::parse_number(s))
    return s;
  return "\"" + s + "\"";
}

// YAML -> JSON with YAML 1.2's core types for plain scalars (quoted ones
// stay strings), for the method section that peft reads as PEFT's JSON.
json to_json(const YAML::Node& node) {
  if (is_null(node))
    return nullptr;
  if (node.IsSequence()) {
    json out = json::array();
    for (const auto& item : node)
      out.push_back(to_json(item));
    return out;
  }
  if (node.IsMap()) {
    json out = json::object();
    for (const auto& item : node)
      out[item.first.Scalar()] = to_json(item.second);
    return out;
  }
  const std::string& s = node.Scalar();
  if (node.Tag() == "!")
    return s;
  if (const auto b = to_bool(s))
    return *b;
  if (const auto i = to_int(s))
    return *i;
  const bool numeric =
      s.find_first_not_of("0123456789+-.eE") == std::string::npos &&
      s.find_first_of("0123456789") != std::string::npos;
  if (const auto d = data::parse_number(s); d && numeric)
    return *d;
  return s;
}

// Hint for a key that is not in `known`: the closest known key, one that
// contains it ("epochs" -> "num_train_epochs"), or the section it belongs
// to.
std::string key_hint(const std::string& key,
                     const std::vector<std::string>& known,
                     const std::string& section) {
  std::string best;
  size_t best_distance = 3;  // at most two edits, fewer than the key's length
  for (const auto& name : known) {
    const size_t d = edit_distance(key, name);
    if (d < best_distance && d < key.size()) {
      best = name;
      best_distance = d;
    }
  }
  if (best.empty() && key.size() >= 3) {
    for (const auto& name : known) {
      if (name.find(key) != std::string::npos) {
        best = name;
        break;
      }
    }
  }
  if (!best.empty())
    return "did you mean \"" + best + "\"?";
  for (const char* other : {"model", "task", "trainer"}) {
    const auto& keys = run_config_keys(other);
    if (other != section &&
        std::find(keys.begin(), keys.end(), key) != keys.end())
      return "\"" + key + "\" belongs in section \"" + other + "\"";
  }
  const auto lora = peft::adapter_config_keys(peft::PeftType::kLora);
  if (section != "method" &&
      std::find(lora.begin(), lora.end(), key) != lora.end())
    return "\"" + key + "\" belongs in section \"method\"";
  return "";
}

}  // namespace

YAML::Node Section::value(const std::string& key) const {
  const YAML::Node& n = node_;  // const: looking up must not add the key
  return n[key];
}

void Section::check_keys(const std::vector<std::string>& known,
                         const std::string& what) const {
  std::set<std::string> seen;
  for (const auto& item : node_) {
    const std::string key = item.first.Scalar();
    const std::string where = ctx_.location(dotted(key), item.first);
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      throw std::invalid_argument(error_message(
          where, what + " (one of: " + join_names(known, ", ", 100) + ")",
          "\"" + key + "\"", key_hint(key, known, name_)));
    }
    if (!seen.insert(key).second) {
      throw std::invalid_argument(error_message(
          where, "each key once in " + what, "\"" + key + "\" twice"));
    }
  }
}

void Section::fail(const std::string& key, const std::string& expected,
                   const std::string& hint) const {
  throw std::invalid_argument(error_message(
      ctx_.location(dotted(key), value(key)),
      dotted(key) + " to be " + expected, shown(value(key)), hint));
}

std::optional<std::string> Section::text(const std::string& key) const {
  const YAML::Node v = value(key);
  if (is_null(v))
    return std::nullopt;
  if (!v.IsScalar())
    fail(key, "a single value");
  return v.Scalar();
}

std::optional<std::vector<std::string>> Section::list(
    const std::string& key) const {
  const YAML::Node v = value(key);
  if (is_null(v))
    return std::nullopt;
  std::vector<std::string> out;
  if (v.IsScalar()) {
    out.push_back(v.Scalar());
    return out;
  }
  if (!v.IsSequence())
    fail(key, "a list of values");
  for (const auto& item : v) {
    if (!item.IsScalar())
      fail(key, "a list of values");
    out.push_back(item.Scalar());
  }
  return out;
}

void Section::read_path(const std::string& key, fs::path& out) const {
  const auto s = text(key);
  if (!s)
    return;
  if (s->empty())
    fail(key, "a path");
  fs::path p(*s);
  if (p.is_relative()) {
    p = ctx_.override_for(dotted(key)) ? fs::current_path() / p
                                       : ctx_.base_dir / p;
  }
  out = p.lexically_normal();
  node_[key] = out.string();
}

bool Section::parse(const std::string& s, std::string& out) {
  out = s;
  return true;
}
bool Section::parse(const std::string& s, int64_t& out) {
  const auto v = to_int(s);
  out = v.value_or(0);
  return v.has_value();
}
bool Section::parse(const std::string& s, uint64_t& out) {
  const auto v = to_int(s);
  out = static_cast<uint64_t>(v.value_or(0));
  return v && *v >= 0;
}
bool Section::parse(const std::string& s, int& out) {
  const auto v = to_int(s);
  out = static_cast<int>(v.value_or(0));
  return v && *v >= INT32_MIN && *v <= INT32_MAX;
}
bool Section::parse(const std::string& s, double& out) {
  const auto v = data::parse_number(s);
  out = v.value_or(0.0);
  return v.has_value();
}
bool Section::parse(const std::string& s, bool& out) {
  const auto v = to_bool(s);
  out = v.value_or(false);
  return v.has_value();
}

}  // namespace detail

namespace {

using detail::Context;
using detail::is_null;
using detail::Section;
using detail::shown;
using detail::to_json;

// The section under `key` of the top level (an empty one when absent).
Section section(YAML::Node& root, const std::string& key, const Context& ctx) {
  YAML::Node node = root[key];
  if (is_null(node)) {
    root[key] = YAML::Node(YAML::NodeType::Map);
    node.reset(root[key]);
  } else if (!node.IsMap()) {
    throw std::invalid_argument(error_message(
        ctx.location(key, node),
        "section \"" + key + "\" to be a mapping of keys", shown(node)));
  }
  return Section(node, key, ctx);
}

// --- overrides ---------------------------------------------------------------

// "a.b=value": the value as YAML when it is a flow list or mapping or a
// quoted string, else the text as a plain scalar (typed where it is read),
// so "C:x", "a # b" and the like stay what was typed.
void apply_override(YAML::Node& root, const std::string& text, Context& ctx) {
  const std::string where = ctx.where + ", override \"" + text + "\"";
  const size_t eq = text.find('=');
  const std::string key = text.substr(0, eq);
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot - start));
    if (dot == std::string::npos)
      break;
    start = dot + 1;
  }
  const bool empty_part = std::any_of(parts.begin(), parts.end(),
                                      [](const auto& p) { return p.empty(); });
  if (eq == std::string::npos || empty_part) {
    throw std::invalid_argument(
        error_message(where, "section.key=value", "\"" + text + "\"",
                      "e.g. trainer.learning_rate=1e-3 or "
                      "method.target_modules=[query,value]"));
  }
  const std::string raw = text.substr(eq + 1);
  YAML::Node value(raw);
  if (raw.empty()) {
    value = YAML::Node(YAML::NodeType::Null);
  } else if (std::string("[{\"'").find(raw[0]) != std::string::npos) {
    try {
      value = YAML::Load(raw);
    } catch (const YAML::Exception& e) {
      throw std::invalid_argument(error_message(
          where, "a YAML value", "\"" + raw + "\" (" + e.msg + ")"));
    }
  }
  YAML::Node cur = root;
  std::string dotted;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    dotted += (i ? "." : "") + parts[i];
    YAML::Node next = cur[parts[i]];
    if (is_null(next)) {
      cur[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next.reset(cur[parts[i]]);
    } else if (!next.IsMap()) {
      throw std::invalid_argument(
          error_message(where, dotted + " to be a section", "a value",
                        "\"" + key + "\" names a key inside a value"));
    }
    cur.reset(next);
  }
  cur[parts.back()] = value;
  ctx.overrides[key] = text;
}

// --- sections ---------------------------------------------------------------

void read_model(const Section& s, ModelSection& m) {
  s.check_keys(run_config_keys("model"), "a key of section \"model\"");
  s.read_path("path", m.path);
  if (m.path.empty()) {
    s.fail("path", "a Hugging Face model folder",
           "set model.path (a folder, or a decoder's .gguf file), or pass "
           "--model.path DIR (scripts/find_minilm.py prints the installed "
           "all-MiniLM-L6-v2)");
  }
  s.read("dtype", m.dtype, detail::is_precision,
         "one of float32, bfloat16, float16");
  s.read(
      "threads", m.threads, [](int v) { return v >= 0; },
      "an integer >= 0 (0: LibTorch's default)");
}

void read_method(const Section& s, peft::AdapterConfig& method,
                 const TaskSection& task, const Context& ctx) {
  const YAML::Node node = s.value("method");
  if (is_null(node)) {
    throw std::invalid_argument(
        error_message(ctx.where, "a \"method\" section", "none",
                      "e.g. method: {peft_type: LORA, r: 8, target_modules: "
                      "[query, value]}"));
  }
  if (!node.IsMap())
    s.fail("method", "a mapping of PEFT config fields");
  std::string where = ctx.location("method", node) + " method";
  for (const auto& [key, text] : ctx.overrides) {
    if (key.rfind("method.", 0) == 0)
      where += ", override \"" + text + "\"";
  }
  // A null value means "not given", as everywhere in the file (and as an
  // empty override value).
  json fields = to_json(node);
  for (auto it = fields.begin(); it != fields.end();)
    it = it->is_null() ? fields.erase(it) : std::next(it);
  // Instruction tuning trains a causal LM: CAUSAL_LM unless told.
  if (task.instruction && !fields.contains("task_type"))
    fields["task_type"] = "CAUSAL_LM";
  method = peft::parse_adapter_config_strict(fields.dump(), where);
  const std::string wanted = task.instruction ? "CAUSAL_LM" : "SEQ_CLS";
  if (method.task_type != wanted) {
    throw std::invalid_argument(error_message(
        where, "method.task_type " + wanted, "\"" + method.task_type + "\"",
        task.instruction
            ? "task_type instruction fine-tunes a causal LM"
            : "peftcpp trains sequence classification and regression heads "
              "(and causal LMs with task.task_type instruction)"));
  }
}

}  // namespace

RunConfig parse_run_config(const std::string& yaml_text,
                           const std::vector<std::string>& overrides,
                           const std::filesystem::path& base_dir,
                           const std::string& where) {
  Context ctx{where.empty() ? "run config" : where, base_dir, {}};
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw std::runtime_error(
        error_message(ctx.where + ":" + std::to_string(e.mark.line + 1) + ":" +
                          std::to_string(e.mark.column + 1),
                      "valid YAML", "\"" + e.msg + "\""));
  }
  if (is_null(root))
    root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) {
    throw std::invalid_argument(error_message(
        ctx.where, "a mapping of sections (model, task, method, trainer)",
        shown(root)));
  }
  for (const auto& text : overrides)
    apply_override(root, text, ctx);

  const Section top(root, "", ctx);
  top.check_keys(run_config_keys(""), "a top-level key");
  RunConfig config;
  read_model(section(root, "model", ctx), config.model);
  detail::read_task(section(root, "task", ctx), config.task);
  read_method(top, config.method, config.task, ctx);
  detail::read_trainer(section(root, "trainer", ctx), config.task,
                       config.trainer);
  top.read_path("output_dir", config.trainer.output_dir);

  YAML::Emitter out;
  out << root;
  config.source_text =
      "# peftcpp run config (overrides applied, paths resolved)\n" +
      std::string(out.c_str()) + "\n";
  return config;
}

RunConfig load_run_config(const std::filesystem::path& path,
                          const std::vector<std::string>& overrides) {
  const std::string text = read_text_file(path, "run config");
  return parse_run_config(text, overrides,
                          fs::absolute(path).lexically_normal().parent_path(),
                          "run config " + path.string());
}

}  // namespace peftcpp::trainers
