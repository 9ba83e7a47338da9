#include "peft/target_selection.h"

#include <regex>
#include <set>
#include <stdexcept>

#include "common/error.h"
#include "models/layers/linear.h"

namespace peftcpp::peft {
namespace {

// Python's re and std::regex (ECMAScript) agree on the patterns PEFT configs
// use (alternation, classes, anchors, quantifiers); a pattern std::regex
// cannot parse is reported as a config error rather than aborting.
std::regex compile(const std::string& pattern, const std::string& where) {
  try {
    return std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw std::invalid_argument(
        error_message(where, "a valid regular expression",
                      "\"" + pattern + "\" (" + e.what() + ")"));
  }
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool list_matches(const std::vector<std::string>& names,
                  const std::string& name) {
  for (const auto& entry : names) {
    if (name == entry || ends_with(name, "." + entry))
      return true;
  }
  return false;
}

// The layer index PEFT reads from a module name: the number after the first
// "<name>.<digits>." (no layers_pattern) or after "<pattern>." (else).
std::optional<int64_t> layer_index(const std::string& name,
                                   const std::vector<std::string>& patterns) {
  std::smatch m;
  if (patterns.empty()) {
    static const std::regex any_layer(R"(^.*?\.[^.]*\.(\d+)\.)");
    if (std::regex_search(name, m, any_layer))
      return std::stoll(m[1].str());
    return std::nullopt;
  }
  for (const auto& pattern : patterns) {
    const std::regex re("^(?:|.*?\\.)" + pattern + R"(\.(\d+)\.)");
    if (std::regex_search(name, m, re))
      return std::stoll(m[1].str());
  }
  return std::nullopt;
}

}  // namespace

bool selector_matches(const ModuleSelector& selector, const std::string& name) {
  if (selector.regex)
    return std::regex_match(name, compile(*selector.regex, "target_modules"));
  return list_matches(selector.names, name);
}

bool is_target(const TargetSpec& spec, const std::string& name) {
  if (!spec.exclude_modules.empty() &&
      selector_matches(spec.exclude_modules, name))
    return false;
  for (const auto& saved : spec.modules_to_save) {
    if (name == saved || ends_with(name, "." + saved) ||
        name.rfind(saved + ".", 0) == 0 ||
        name.find("." + saved + ".") != std::string::npos)
      return false;
  }
  const ModuleSelector& targets = spec.target_modules;
  if (targets.regex)
    return selector_matches(targets, name);
  for (const auto& entry : targets.names) {
    if (name == entry)
      return true;  // an exact name ignores layers_to_transform, as in PEFT
  }
  if (!list_matches(targets.names, name))
    return false;
  if (spec.layers_to_transform.empty())
    return true;
  const auto index = layer_index(name, spec.layers_pattern);
  if (!index)
    return false;
  for (int64_t wanted : spec.layers_to_transform) {
    if (wanted == *index)
      return true;
  }
  return false;
}

bool pattern_key_matches(const std::string& key, const std::string& name) {
  return std::regex_match(
      name, compile("(.*\\.)?(" + key + ")", "rank_pattern / alpha_pattern"));
}

std::vector<std::pair<std::string, std::shared_ptr<models::LinearImpl>>>
select_target_linears(torch::nn::Module& root, const TargetSpec& spec,
                      const std::string& where) {
  std::vector<std::pair<std::string, std::shared_ptr<models::LinearImpl>>>
      found;
  std::vector<std::string> unsupported;
  std::vector<std::string> linear_names;
  std::set<std::string> suffixes;
  for (const auto& item : root.named_modules(/*name_prefix=*/"",
                                             /*include_self=*/false)) {
    const std::string& name = item.key();
    auto linear = std::dynamic_pointer_cast<models::LinearImpl>(item.value());
    if (linear) {
      linear_names.push_back(name);
      const auto dot = name.rfind('.');
      suffixes.insert(dot == std::string::npos ? name : name.substr(dot + 1));
    }
    if (!is_target(spec, name))
      continue;
    if (linear)
      found.emplace_back(name, linear);
    else
      unsupported.push_back(name);
  }
  if (!unsupported.empty()) {
    throw std::invalid_argument(error_message(
        where, "target_modules to select Linear layers only",
        "[" + join_names(unsupported) + "], which are not Linear layers",
        "narrow target_modules to projections such as [" +
            join_names(suffixes) + "]"));
  }
  if (found.empty()) {
    throw std::invalid_argument(error_message(
        where, "target_modules to match at least one module of the model",
        "no match",
        "the model's Linear layers are [" + join_names(linear_names, ", ", 12) +
            "]; a list entry may be a name suffix such as [" +
            join_names(suffixes) + "]"));
  }
  return found;
}

}  // namespace peftcpp::peft
