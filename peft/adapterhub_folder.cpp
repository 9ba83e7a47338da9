#include "peft/adapterhub_folder.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/text_file.h"
#include "models/checkpoint/safetensors.h"
#include "models/checkpoint/state_dict.h"

namespace peftcpp::peft {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// adapters' file names (adapters/utils.py).
constexpr const char* kConfigFile = "adapter_config.json";
constexpr const char* kWeightsFile = "adapter.safetensors";
constexpr const char* kWeightsBinFile = "pytorch_adapter.bin";
constexpr const char* kHeadConfigFile = "head_config.json";
constexpr const char* kHeadWeightsFile = "model_head.safetensors";
constexpr const char* kHeadWeightsBinFile = "pytorch_model_head.bin";

std::string read_text(const fs::path& path) {
  return read_text_file(path, "read_adapterhub_folder");
}

json parse_json(const std::string& text, const std::string& where) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw std::runtime_error(error_message(
        where, "valid JSON", std::string("a parse error: ") + e.what()));
  }
}

// Python's json.dump(obj, f, indent=2, sort_keys=True): nlohmann's objects
// are sorted already; ensure_ascii as Python's default.
std::string dump(const json& j) {
  return j.dump(/*indent=*/2, /*indent_char=*/' ', /*ensure_ascii=*/true);
}

void write_text(const fs::path& path, const std::string& text) {
  write_file_atomically(path, [&](std::ostream& out) { out << text; });
}

// A Python number as json.dump writes it: integers without a fraction (the
// presets' reduction factors are ints), floats with one.
json number(double v, bool as_float) {
  if (!as_float && std::isfinite(v) && v == std::floor(v) &&
      std::fabs(v) < 9.0e15)
    return static_cast<int64_t>(v);
  return v;
}

// --- reading the config, field by field --------------------------------------

class Fields {
 public:
  Fields(const json& obj, std::string where)
      : obj_(obj), where_(std::move(where)) {}

  const json* find(const char* key) const {
    const auto it = obj_.find(key);
    return it == obj_.end() ? nullptr : &*it;
  }

  [[noreturn]] void wrong(const char* key, const std::string& expected) const {
    const json* v = find(key);
    throw std::runtime_error(
        error_message(where_, std::string("\"") + key + "\" " + expected,
                      v ? v->dump() : "nothing"));
  }

  void read(const char* key, bool& out) const {
    if (const json* v = find(key)) {
      if (!v->is_boolean())
        wrong(key, "true or false");
      out = v->get<bool>();
    }
  }
  void read(const char* key, double& out) const {
    if (const json* v = find(key)) {
      if (!v->is_number())
        wrong(key, "a number");
      out = v->get<double>();
    }
  }
  void read(const char* key, std::string& out) const {
    if (const json* v = find(key)) {
      if (!v->is_string())
        wrong(key, "a string");
      out = v->get<std::string>();
    }
  }

  // A BnConfig option peftcpp does not implement: only its default passes.
  void refuse_unless(const char* key, const json& allowed,
                     const std::string& what) const {
    const json* v = find(key);
    if (v == nullptr || *v == allowed || (allowed.is_boolean() && v->is_null()))
      return;
    throw std::invalid_argument(
        error_message(where_, std::string("\"") + key + "\": " + allowed.dump(),
                      v->dump(), what + " is not implemented in peftcpp"));
  }

  const std::string& where() const { return where_; }

 private:
  const json& obj_;
  std::string where_;
};

BottleneckConfig config_from_object(const json& obj, const std::string& where) {
  const Fields f(obj, where);
  // A dict without "architecture" is a BnConfig; others are other methods.
  if (const json* arch = f.find("architecture"); arch && !arch->is_null()) {
    throw std::runtime_error(error_message(
        where, "a bottleneck adapter config (no \"architecture\")",
        "architecture " + arch->dump(),
        "peftcpp reads AdapterHub's bottleneck adapters only; LoRA, prefix "
        "tuning and the like load from Hugging Face PEFT folders"));
  }
  for (const char* required :
       {"mh_adapter", "output_adapter", "reduction_factor", "non_linearity"}) {
    if (f.find(required) == nullptr)
      f.wrong(required, "(a required BnConfig field)");
  }
  f.refuse_unless("phm_layer", false, "phm_layer (Compacter)");
  f.refuse_unless("inv_adapter", nullptr, "inv_adapter (invertible adapters)");
  f.refuse_unless("cross_adapter", false, "cross_adapter");

  BottleneckConfig c;
  // Absent fields take BnConfig's defaults, which differ from seq_bn's.
  c.architecture = "";
  c.original_ln_before = false;
  f.read("mh_adapter", c.mh_adapter);
  f.read("output_adapter", c.output_adapter);
  const json& rf = *f.find("reduction_factor");
  if (rf.is_number()) {
    c.reduction_factor = rf.get<double>();
  } else if (rf.is_object()) {
    c.reduction_factor = 0;  // no default unless given
    for (const auto& [key, value] : rf.items()) {
      if (!value.is_number())
        f.wrong("reduction_factor", "a number or {\"<layer>\": number, ...}");
      if (key == "default") {
        c.reduction_factor = value.get<double>();
        continue;
      }
      size_t used = 0;
      int64_t layer = -1;
      try {
        layer = std::stoll(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != key.size() || layer < 0)
        f.wrong("reduction_factor",
                "keys that are layer indices or "
                "\"default\"");
      c.reduction_factor_by_layer[layer] = value.get<double>();
    }
  } else {
    f.wrong("reduction_factor", "a number or {\"<layer>\": number, ...}");
  }
  f.read("non_linearity", c.non_linearity);
  f.read("original_ln_before", c.original_ln_before);
  f.read("original_ln_after", c.original_ln_after);
  if (const json* v = f.find("residual_before_ln"); v && v->is_string()) {
    f.refuse_unless("residual_before_ln", true,
                    "residual_before_ln \"post_add\"");
  }
  f.read("residual_before_ln", c.residual_before_ln);
  f.read("adapter_residual_before_ln", c.adapter_residual_before_ln);
  f.read("ln_before", c.ln_before);
  f.read("ln_after", c.ln_after);
  f.read("init_weights", c.init_weights);
  if (const json* v = f.find("init_weights_seed"); v && !v->is_null()) {
    if (!v->is_number_integer())
      f.wrong("init_weights_seed", "an integer or null");
    c.init_weights_seed = v->get<int64_t>();
  }
  f.read("is_parallel", c.is_parallel);
  if (const json* v = f.find("scaling"); v && v->is_string()) {
    c.scaling = 1.0;
    c.scaling_mode = v->get<std::string>();
  } else {
    f.read("scaling", c.scaling);
  }
  f.read("use_gating", c.use_gating);
  f.read("dropout", c.dropout);
  if (const json* v = f.find("stochastic_depth"); v && !v->is_null())
    f.read("stochastic_depth", c.stochastic_depth);
  if (const json* v = f.find("leave_out"); v && !v->is_null()) {
    if (!v->is_array())
      f.wrong("leave_out", "a list of layer indices");
    for (const auto& i : *v) {
      if (!i.is_number_integer())
        f.wrong("leave_out", "a list of layer indices");
      c.leave_out.push_back(i.get<int64_t>());
    }
  }
  // A config equal to a preset is labelled so.
  for (const char* name :
       {"seq_bn", "double_seq_bn", "par_bn", "scaled_par_bn"}) {
    BottleneckConfig p = BottleneckConfig::preset(name);
    p.architecture = "";
    if (bottleneck_config_to_json(p) == bottleneck_config_to_json(c))
      c.architecture = name;
  }
  return c;
}

TensorMap load_weights(const fs::path& file) {
  return models::load_checkpoint(file);
}

// The first of `names` in `dir`, or an empty path.
fs::path first_existing(const fs::path& dir,
                        std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (fs::is_regular_file(dir / n))
      return dir / n;
  }
  return {};
}

}  // namespace

std::string bottleneck_config_to_json(const BottleneckConfig& c) {
  json j;
  j["adapter_residual_before_ln"] = c.adapter_residual_before_ln;
  j["cross_adapter"] = false;
  j["dropout"] = number(c.dropout, /*as_float=*/true);
  j["factorized_phm_W"] = true;
  j["factorized_phm_rule"] = false;
  j["hypercomplex_nonlinearity"] = "glorot-uniform";
  j["init_weights"] = c.init_weights;
  j["init_weights_seed"] =
      c.init_weights_seed ? json(*c.init_weights_seed) : json(nullptr);
  j["inv_adapter"] = nullptr;
  j["inv_adapter_reduction_factor"] = nullptr;
  j["is_parallel"] = c.is_parallel;
  j["learn_phm"] = true;
  j["leave_out"] = json::array();
  for (int64_t i : c.leave_out)
    j["leave_out"].push_back(i);
  j["ln_after"] = c.ln_after;
  j["ln_before"] = c.ln_before;
  j["mh_adapter"] = c.mh_adapter;
  j["non_linearity"] = c.non_linearity;
  j["original_ln_after"] = c.original_ln_after;
  j["original_ln_before"] = c.original_ln_before;
  j["output_adapter"] = c.output_adapter;
  j["phm_bias"] = true;
  j["phm_c_init"] = "normal";
  j["phm_dim"] = 4;
  j["phm_init_range"] = 0.0001;
  j["phm_layer"] = false;
  j["phm_rank"] = 1;
  if (c.reduction_factor_by_layer.empty()) {
    j["reduction_factor"] = number(c.reduction_factor, /*as_float=*/false);
  } else {
    json m = json::object();
    for (const auto& [layer, f] : c.reduction_factor_by_layer)
      m[std::to_string(layer)] = number(f, /*as_float=*/false);
    if (c.reduction_factor > 0)
      m["default"] = number(c.reduction_factor, /*as_float=*/false);
    j["reduction_factor"] = m;
  }
  j["residual_before_ln"] = c.residual_before_ln;
  // AdapterHub accepts only a float (or a string) here.
  j["scaling"] = c.scaling_mode.empty() ? number(c.scaling, /*as_float=*/true)
                                        : json(c.scaling_mode);
  j["shared_W_phm"] = false;
  j["shared_phm_rule"] = true;
  j["stochastic_depth"] = number(c.stochastic_depth, /*as_float=*/true);
  j["use_gating"] = c.use_gating;
  return dump(j);
}

BottleneckConfig parse_bottleneck_config(const std::string& json_text,
                                         const std::string& where) {
  const json j = parse_json(json_text, where);
  if (j.is_string())
    return BottleneckConfig::preset(j.get<std::string>());
  if (!j.is_object()) {
    throw std::runtime_error(
        error_message(where, "a BnConfig object or a preset name", j.dump()));
  }
  return config_from_object(j, where);
}

bool is_adapterhub_folder(const fs::path& dir) {
  try {
    const fs::path file = dir / kConfigFile;
    if (!fs::is_regular_file(file))
      return false;
    const json j = json::parse(read_text(file));
    if (!j.is_object() || !j.contains("config") || !j.contains("version"))
      return false;
    const json& v = j["version"];
    return v.is_string() && v.get<std::string>().rfind("adapters.", 0) == 0;
  } catch (const std::exception&) {
    return false;
  }
}

AdapterHubFolder read_adapterhub_folder(const fs::path& dir) {
  const fs::path config_path = dir / kConfigFile;
  const std::string where = config_path.string();
  const json j = parse_json(read_text(config_path), where);
  if (!j.is_object() || !j.contains("config")) {
    throw std::runtime_error(error_message(
        where, "an AdapterHub adapter_config.json with \"config\"",
        j.is_object() ? "an object without it" : j.dump()));
  }
  AdapterHubFolder out;
  if (!j.contains("name") || !j["name"].is_string()) {
    throw std::runtime_error(
        error_message(where, "\"name\" (the adapter's name, a string)",
                      j.contains("name") ? j["name"].dump() : "nothing"));
  }
  out.name = j["name"].get<std::string>();
  const json& config = j["config"];
  if (config.is_string())
    out.config = BottleneckConfig::preset(config.get<std::string>());
  else if (config.is_object())
    out.config = config_from_object(config, where);
  else
    throw std::runtime_error(error_message(
        where, "\"config\" as an object or a preset name", config.dump()));
  if (j.contains("model_class") && j["model_class"].is_string())
    out.model_class = j["model_class"].get<std::string>();

  const fs::path weights = first_existing(dir, {kWeightsFile, kWeightsBinFile});
  if (weights.empty()) {
    throw std::runtime_error(error_message("read_adapterhub_folder",
                                           std::string(kWeightsFile) + " or " +
                                               kWeightsBinFile + " in " +
                                               dir.string(),
                                           "neither"));
  }
  out.adapter_weights = load_weights(weights);

  const fs::path head =
      first_existing(dir, {kHeadWeightsFile, kHeadWeightsBinFile});
  if (!head.empty()) {
    out.head_weights = load_weights(head);
    const fs::path head_config = dir / kHeadConfigFile;
    if (fs::is_regular_file(head_config)) {
      const json h = parse_json(read_text(head_config), head_config.string());
      if (h.is_object() && h.contains("label2id") &&
          h["label2id"].is_object()) {
        std::map<int64_t, std::string> by_id;
        for (const auto& [label, id] : h["label2id"].items()) {
          if (id.is_number_integer())
            by_id[id.get<int64_t>()] = label;
        }
        for (const auto& [id, label] : by_id)
          out.id2label.push_back(label);
      }
    }
  }
  return out;
}

void save_adapterhub_folder(const fs::path& dir, const std::string& name,
                            const BottleneckConfig& config,
                            const ModelInfo& info,
                            const std::string& model_class,
                            const TensorMap& adapter_weights,
                            const TensorMap& head_weights,
                            const std::vector<std::string>& id2label) {
  const std::string version = std::string("adapters.") + kAdapterHubVersion;
  // Everything that can fail comes before the first file is written.
  std::vector<std::string> labels = id2label;
  if (!head_weights.empty() && labels.empty()) {
    // The head's last Linear has one row per label.
    const char* last = head_weights.count("classifier.out_proj.weight")
                           ? "classifier.out_proj.weight"
                           : "classifier.weight";
    const auto it = head_weights.find(last);
    if (it == head_weights.end() || it->second.dim() != 2) {
      throw std::invalid_argument(
          error_message("save_adapterhub_folder",
                        "id2label, or a head with classifier.weight or "
                        "classifier.out_proj.weight [num_labels, hidden]",
                        "neither", "pass the model's id2label"));
    }
    for (int64_t i = 0; i < it->second.size(0); ++i)
      labels.push_back("LABEL_" + std::to_string(i));
  }
  auto ordered = [](const TensorMap& m) {
    std::vector<std::pair<std::string, at::Tensor>> v;
    for (const auto& [key, t] : m)
      v.emplace_back(key, t.detach());
    return v;
  };

  json a;
  a["config"] = json::parse(bottleneck_config_to_json(config));
  a["hidden_size"] = info.hidden_size;
  a["model_class"] = model_class;
  a["model_name"] = "";
  a["model_type"] = info.model_type;
  a["name"] = name;
  a["version"] = version;

  fs::create_directories(dir);
  write_text(dir / kConfigFile, dump(a));
  models::save_safetensors(dir / kWeightsFile, ordered(adapter_weights));
  if (head_weights.empty())
    return;
  json h;
  h["config"] = nullptr;
  h["hidden_size"] = info.hidden_size;
  h["label2id"] = json::object();
  for (size_t i = 0; i < labels.size(); ++i)
    h["label2id"][labels[i]] = static_cast<int64_t>(i);
  h["model_class"] = model_class;
  h["model_name"] = "";
  h["model_type"] = info.model_type;
  h["name"] = nullptr;
  h["num_labels"] = static_cast<int64_t>(labels.size());
  h["version"] = version;
  write_text(dir / kHeadConfigFile, dump(h));
  models::save_safetensors(dir / kHeadWeightsFile, ordered(head_weights));
}

}  // namespace peftcpp::peft
