#pragma once
// Internal to the run-config parser (run_config_yaml.cpp,
// run_config_sections.cpp): reading one mapping of the YAML tree with the
// key in every message. Not part of the library's interface.

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "trainers/run_config.h"

namespace peftcpp::trainers::detail {

/// Where values came from: the file (with lines) or an override (named in
/// messages; its relative paths are the current folder's, as it was typed
/// on a command line).
struct Context {
  std::string where;  ///< "run config FILE"
  std::filesystem::path base_dir;
  std::map<std::string, std::string> overrides;  ///< dotted key -> "key=value"

  /// The override that set `dotted` or a section holding it, or nullptr.
  const std::string* override_for(const std::string& dotted) const;
  /// "FILE:LINE", or "FILE, override "k=v"" for a value from an override.
  std::string location(const std::string& dotted, const YAML::Node& node) const;
};

/// A plain scalar YAML reads as null (`~`, `null`, nothing), or no node.
bool is_null(const YAML::Node& node);
/// A whole string as a decimal integer.
std::optional<int64_t> to_int(const std::string& s);
/// true/True/TRUE, false/False/FALSE (YAML 1.2's core schema).
std::optional<bool> to_bool(const std::string& s);
/// float32, bfloat16, float16.
bool is_precision(const std::string& name);

/// One mapping of the config (the top level or a section) and how to read
/// its keys.
class Section {
 public:
  Section(YAML::Node node, std::string name, const Context& ctx)
      : node_(std::move(node)), name_(std::move(name)), ctx_(ctx) {}

  /// "trainer.seed" for "seed".
  std::string dotted(const std::string& key) const {
    return name_.empty() ? key : name_ + "." + key;
  }
  /// The node under `key` (undefined when absent).
  YAML::Node value(const std::string& key) const;
  /// Present and not null.
  bool has(const std::string& key) const { return !is_null(value(key)); }
  /// The section itself, for messages about it as a whole.
  std::string location() const { return ctx_.location(name_, node_); }

  /// Every key in `known`, none twice; else std::invalid_argument with the
  /// closest known key or the section the key belongs to as hint. `what`:
  /// "a key of section \"trainer\"".
  void check_keys(const std::vector<std::string>& known,
                  const std::string& what) const;

  /// Throws "[LOCATION] expected <section.key> to be <expected>, got ...".
  [[noreturn]] void fail(const std::string& key, const std::string& expected,
                         const std::string& hint = "") const;

  /// A single value as text; nullopt when absent or null.
  std::optional<std::string> text(const std::string& key) const;
  /// A list of values (one value is a list of one); nullopt when absent.
  std::optional<std::vector<std::string>> list(const std::string& key) const;

  /// Reads `key` into `out` when it is there; `ok` checks the value,
  /// `expected` says what it must be.
  template <class T, class Check>
  void read(const std::string& key, T& out, Check ok,
            const std::string& expected) const {
    const auto s = text(key);
    if (!s)
      return;
    T v{};
    if (!parse(*s, v) || !ok(v))
      fail(key, expected);
    out = v;
  }
  template <class T>
  void read(const std::string& key, T& out) const {
    read(
        key, out, [](const T&) { return true; }, expected_of<T>());
  }

  /// A path: a relative one against the file's folder, or the current
  /// folder when an override set it. The resolved path is written back into
  /// the tree, so the saved config means the same from anywhere.
  void read_path(const std::string& key, std::filesystem::path& out) const;

 private:
  static bool parse(const std::string& s, std::string& out);
  static bool parse(const std::string& s, int64_t& out);
  static bool parse(const std::string& s, uint64_t& out);
  static bool parse(const std::string& s, int& out);
  static bool parse(const std::string& s, double& out);
  static bool parse(const std::string& s, bool& out);
  template <class T>
  static std::string expected_of() {
    if constexpr (std::is_same_v<T, bool>)
      return "true or false";
    else if constexpr (std::is_integral_v<T>)
      return "an integer";
    else if constexpr (std::is_floating_point_v<T>)
      return "a number";
    else
      return "a string";
  }

  // yaml-cpp nodes are handles: writing through a copy writes the tree.
  mutable YAML::Node node_;
  std::string name_;
  const Context& ctx_;
};

/// The task section (run_config_sections.cpp).
void read_task(const Section& s, TaskSection& task);
/// The trainer section; `task` gives the metrics and the default
/// metric_for_best_model.
void read_trainer(const Section& s, const TaskSection& task,
                  TrainerOptions& trainer);

}  // namespace peftcpp::trainers::detail
