// BottleneckConfig: AdapterHub's presets, the checks add_bottleneck makes
// on a config, and the sizes and activations it derives from one.

#include <algorithm>
#include <cctype>
#include <cmath>
#include <stdexcept>

#include "common/error.h"
#include "peft/bottleneck.h"

namespace peftcpp::peft {
namespace {

// --- presets ---------------------------------------------------------------

// AdapterHub's ADAPTER_CONFIG_MAP entries for bottleneck adapters.
BottleneckConfig seq_bn() {
  return BottleneckConfig{};
}

BottleneckConfig double_seq_bn() {
  BottleneckConfig c;
  c.architecture = "double_seq_bn";
  c.mh_adapter = true;
  c.original_ln_before = false;
  c.non_linearity = "swish";
  return c;
}

BottleneckConfig par_bn() {
  BottleneckConfig c;
  c.architecture = "par_bn";
  c.original_ln_before = false;
  c.reduction_factor = 2;
  c.init_weights = "mam_adapter";
  c.is_parallel = true;
  c.scaling = 4.0;
  return c;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char ch) { return std::tolower(ch); });
  return s;
}

}  // namespace

// AdapterHub's Activation_Function_Class: "leakyrelu" is its own name,
// everything else goes through transformers' get_activation(name.lower()).
models::Activation bottleneck_activation(const std::string& name,
                                         const std::string& where) {
  const std::string n = lower(name);
  if (n == "leakyrelu")
    return models::Activation::kLeakyRelu;
  try {
    return models::parse_activation(n);
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument(error_message(
        where,
        "a non_linearity transformers' get_activation knows (relu, "
        "swish, gelu, gelu_new, tanh, ...) or \"leakyrelu\"",
        "\"" + name + "\""));
  }
}

void validate_bottleneck_config(const BottleneckConfig& c,
                                const std::string& where) {
  bottleneck_activation(c.non_linearity, where);
  if (c.init_weights != "bert" && c.init_weights != "mam_adapter" &&
      c.init_weights != "houlsby") {
    throw std::invalid_argument(error_message(
        where, "init_weights \"bert\", \"mam_adapter\" or \"houlsby\"",
        "\"" + c.init_weights + "\""));
  }
  if (!c.scaling_mode.empty() && c.scaling_mode != "learned" &&
      c.scaling_mode != "channel") {
    throw std::invalid_argument(error_message(
        where,
        "scaling_mode \"\" (the constant scaling), \"learned\" or "
        "\"channel\"",
        "\"" + c.scaling_mode + "\""));
  }
  if (!(c.dropout >= 0.0 && c.dropout < 1.0)) {
    throw std::invalid_argument(
        error_message(where, "dropout in [0, 1)", std::to_string(c.dropout)));
  }
  if (!(c.stochastic_depth >= 0.0 && c.stochastic_depth <= 1.0)) {
    throw std::invalid_argument(
        error_message(where, "stochastic_depth in [0, 1]",
                      std::to_string(c.stochastic_depth)));
  }
}

BottleneckConfig BottleneckConfig::preset(const std::string& architecture) {
  if (architecture == "seq_bn" || architecture == "pfeiffer")
    return seq_bn();
  if (architecture == "double_seq_bn" || architecture == "houlsby")
    return double_seq_bn();
  if (architecture == "par_bn" || architecture == "parallel")
    return par_bn();
  if (architecture == "scaled_par_bn" || architecture == "scaled_parallel") {
    BottleneckConfig c = par_bn();
    c.architecture = "scaled_par_bn";
    c.scaling_mode = "learned";
    return c;
  }
  throw std::invalid_argument(error_message(
      "BottleneckConfig::preset",
      "\"seq_bn\" (\"pfeiffer\"), \"double_seq_bn\" (\"houlsby\"), "
      "\"par_bn\" (\"parallel\") or \"scaled_par_bn\" (\"scaled_parallel\")",
      "\"" + architecture + "\""));
}

int64_t bottleneck_size(const BottleneckConfig& config, int64_t hidden_size,
                        int64_t layer) {
  const auto it = config.reduction_factor_by_layer.find(layer);
  const bool listed = it != config.reduction_factor_by_layer.end();
  const double factor = listed ? it->second : config.reduction_factor;
  if (!(factor > 0.0)) {
    throw std::invalid_argument(error_message(
        "add_bottleneck",
        "a positive reduction_factor for layer " + std::to_string(layer),
        listed || !config.reduction_factor_by_layer.empty()
            ? std::to_string(factor)
            : std::to_string(config.reduction_factor),
        config.reduction_factor_by_layer.empty() || listed
            ? ""
            : "the layer is not in reduction_factor_by_layer and there is "
              "no default"));
  }
  // Python: int(hidden_size // reduction_factor), at least 1.
  const auto size = static_cast<int64_t>(
      std::floor(static_cast<double>(hidden_size) / factor));
  return std::max<int64_t>(size, 1);
}

}  // namespace peftcpp::peft
