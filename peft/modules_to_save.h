#pragma once
// PEFT's modules_to_save: modules (a new classification head) trained whole
// with an adapter and saved in it. Each adapter gets its own copy of the
// module's Linear layers; while the adapter is active the copy computes the
// layer's output in place of the original, which stays untouched for the
// other adapters and for the disabled scope (PEFT's ModulesToSaveWrapper).
// Parameters: "<layer>.modules_to_save.<name>.weight" (PEFT:
// "classifier.modules_to_save.<name>.weight"); saved under the original
// key, "base_model.model.classifier.weight".

#include <memory>
#include <string>
#include <vector>

#include "peft/adapter.h"

namespace peftcpp::peft {

/// Copies the modules of `ctx.root` named in `module_names` (exact name or
/// ".name" suffix) for adapter `name`. A module must consist of Linear
/// layers (a head); other modules are refused with std::invalid_argument.
/// Names matching no module are skipped unless none matches at all and
/// `required` is set. Returns nullptr when nothing matched.
std::unique_ptr<Adapter> add_modules_to_save(
    const AdapterContext& ctx, const std::string& name,
    const std::vector<std::string>& module_names, bool required);

}  // namespace peftcpp::peft
