#pragma once
// Which modules of a model an adapter goes into, decided exactly as HF PEFT
// decides it (tuners_utils.check_target_module_exists), so a config written
// for PEFT selects the same modules here:
// - target_modules as a string is a regular expression that must match the
//   whole module name; as a list, an entry matches a module named exactly so
//   or ending in "." + entry;
// - with a list, layers_to_transform keeps only modules whose layer index
//   (the number after `layers_pattern`, or after any "<name>.<index>.")
//   is listed;
// - modules in modules_to_save (and their children) are never targeted;
// - exclude_modules (same string/list rules) removes modules.

#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "peft/adapter_config.h"

namespace peftcpp::models {
class LinearImpl;
}

namespace peftcpp::peft {

/// Where to inject: the selector and the layer filter of a config.
struct TargetSpec {
  ModuleSelector target_modules;
  ModuleSelector exclude_modules;
  std::vector<int64_t> layers_to_transform;
  std::vector<std::string> layers_pattern;
  /// Modules trained whole with the adapter: never targeted, nor anything
  /// inside them (PEFT: `(^|.*\.)name($|\..*)`).
  std::vector<std::string> modules_to_save;
};

/// Whether `selector` selects the module named `name` (string: full regex
/// match; list: exact name or ".entry" suffix). An empty selector selects
/// nothing.
bool selector_matches(const ModuleSelector& selector, const std::string& name);

/// Whether `spec` targets the module `name` (PEFT's rules, above).
bool is_target(const TargetSpec& spec, const std::string& name);

/// The Linear layers of `root` that `spec` targets, by module name, in
/// module order. Throws std::invalid_argument when a targeted module is not
/// a Linear (PEFT: "Target module ... is not supported") or when nothing is
/// targeted: the message lists the model's Linear layer names (and the
/// suffixes a list could use) so the user can fix target_modules.
std::vector<std::pair<std::string, std::shared_ptr<models::LinearImpl>>>
select_target_linears(torch::nn::Module& root, const TargetSpec& spec,
                      const std::string& where);

/// The entry of a rank_pattern / alpha_pattern map that applies to module
/// `name` (PEFT's get_pattern_key: the first key K, in key order, with
/// `(.*\.)?(K)$` matching the name), or nullptr.
template <class Map>
const typename Map::mapped_type* find_pattern_value(const Map& patterns,
                                                    const std::string& name);

/// Whether `name` matches `(.*\.)?(key)$` (the rule behind rank_pattern).
bool pattern_key_matches(const std::string& key, const std::string& name);

template <class Map>
const typename Map::mapped_type* find_pattern_value(const Map& patterns,
                                                    const std::string& name) {
  for (const auto& [key, value] : patterns) {
    if (pattern_key_matches(key, name))
      return &value;
  }
  return nullptr;
}

}  // namespace peftcpp::peft
