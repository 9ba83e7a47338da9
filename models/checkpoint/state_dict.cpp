#include "models/checkpoint/state_dict.h"

#include <torch/csrc/autograd/grad_mode.h>
#include <torch/nn/module.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <stdexcept>
#include <unordered_set>

#include "common/error.h"
#include "models/checkpoint/safetensors.h"
#include "models/checkpoint/torch_bin.h"

namespace peftcpp::models {

namespace fs = std::filesystem;

namespace {

// The files transformers looks for, in its order of preference.
constexpr const char* kCheckpointFiles[] = {
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Floating point, integer or bool: what a conversion must preserve.
int dtype_kind(at::ScalarType t) {
  if (at::isFloatingType(t) || at::isComplexType(t))
    return 0;
  if (t == at::kBool)
    return 2;
  return 1;
}

std::string shape_str(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return s + "]";
}

StateDict load_safetensors_file(const fs::path& path) {
  const auto file = SafetensorsFile::open(path);
  StateDict sd;
  for (const auto& name : file->keys()) {
    sd.emplace(name, file->tensor(name));
  }
  return sd;
}

// One checkpoint file of either format, told apart by content, not name: a
// safetensors file is an 8-byte header length then the JSON header ("{"); a
// torch.save archive is a zip ("PK") or, before torch 1.6, a pickle (0x80).
// The safetensors test comes first: a header length's low byte may be 0x80.
StateDict load_single_file(const fs::path& path) {
  char magic[9] = {0};
  std::ifstream(path, std::ios::binary).read(magic, sizeof(magic));
  if (magic[8] == '{')
    return load_safetensors_file(path);
  const bool zip = magic[0] == 'P' && magic[1] == 'K';
  const bool legacy_pickle = uint8_t(magic[0]) == 0x80;
  if (zip || legacy_pickle || ends_with(path.string(), ".bin") ||
      ends_with(path.string(), ".pt") || ends_with(path.string(), ".pth")) {
    return load_torch_bin(path);
  }
  return load_safetensors_file(path);
}

// A sharded checkpoint: {"weight_map": {tensor name: shard file}}. Every
// shard must be there before anything is read, so a partial download fails
// at once with the name of what is missing.
StateDict load_index(const fs::path& index_path) {
  const std::string where = "load_checkpoint '" + index_path.string() + "'";
  nlohmann::json index;
  try {
    std::ifstream in(index_path);
    index = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(
        error_message(where, "a JSON shard index",
                      std::string("invalid JSON (") + e.what() + ")"));
  }
  const auto wm = index.find("weight_map");
  if (!index.is_object() || wm == index.end() || !wm->is_object()) {
    throw std::runtime_error(error_message(
        where, "an object with a \"weight_map\" of name -> shard file", "none",
        "is this a shard index written by transformers?"));
  }
  std::map<std::string, std::vector<std::string>> by_shard;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string()) {
      throw std::runtime_error(
          error_message(where + ", weight_map '" + it.key() + "'",
                        "a shard file name", it.value().dump()));
    }
    by_shard[it.value().get<std::string>()].push_back(it.key());
  }
  const fs::path dir = index_path.parent_path();
  for (const auto& [shard, names] : by_shard) {
    if (!fs::is_regular_file(dir / shard)) {
      throw std::runtime_error(error_message(
          where,
          "shard '" + shard + "' (holding " + std::to_string(names.size()) +
              " tensors, e.g. '" + names.front() + "')",
          "no such file in '" + dir.string() + "'",
          "an incomplete download? fetch every shard the index lists"));
    }
  }
  StateDict sd;
  for (const auto& [shard, names] : by_shard) {
    StateDict part = load_single_file(dir / shard);
    for (const auto& name : names) {
      auto it = part.find(name);
      if (it == part.end()) {
        throw std::runtime_error(error_message(
            where, "tensor '" + name + "' in shard '" + shard + "'",
            "a shard without it", "the index and the shards disagree"));
      }
      sd.emplace(name, std::move(it->second));
    }
  }
  return sd;
}

// HF's "legacy" renames (transformers conversion_mapping.py): old
// TF-converted BERT checkpoints call LayerNorm parameters gamma / beta.
std::string legacy_rename(const std::string& name) {
  static const std::pair<std::string, std::string> kRenames[] = {
      {"LayerNorm.gamma", "LayerNorm.weight"},
      {"LayerNorm.beta", "LayerNorm.bias"},
  };
  for (const auto& [from, to] : kRenames) {
    if (ends_with(name, from) && (name.size() == from.size() ||
                                  name[name.size() - from.size() - 1] == '.')) {
      return name.substr(0, name.size() - from.size()) + to;
    }
  }
  return name;
}

std::vector<std::regex> compile(const std::vector<std::string>& patterns,
                                const char* option) {
  std::vector<std::regex> out;
  for (const auto& p : patterns) {
    try {
      out.emplace_back(p);
    } catch (const std::regex_error& e) {
      throw std::invalid_argument(
          error_message(std::string("load_state_dict, ") + option,
                        "a valid regex", "'" + p + "' (" + e.what() + ")"));
    }
  }
  return out;
}

bool matches_any(const std::string& name, const std::vector<std::regex>& re) {
  for (const auto& r : re) {
    if (std::regex_search(name, r)) {
      return true;
    }
  }
  return false;
}

std::string list_names(const std::vector<std::string>& names) {
  return std::to_string(names.size()) + " (" + join_names(names) + ")";
}

}  // namespace

StateDict load_checkpoint(const fs::path& dir_or_file) {
  const std::string where = "load_checkpoint '" + dir_or_file.string() + "'";
  if (fs::is_regular_file(dir_or_file)) {
    if (ends_with(dir_or_file.string(), ".index.json")) {
      return load_index(dir_or_file);
    }
    return load_single_file(dir_or_file);
  }
  if (!fs::is_directory(dir_or_file)) {
    throw std::runtime_error(error_message(
        where, "an existing model folder or checkpoint file", "nothing there"));
  }
  for (const char* name : kCheckpointFiles) {
    const fs::path p = dir_or_file / name;
    if (!fs::is_regular_file(p)) {
      continue;
    }
    return ends_with(name, ".index.json") ? load_index(p) : load_single_file(p);
  }
  std::vector<std::string> present;
  for (const auto& entry : fs::directory_iterator(dir_or_file)) {
    present.push_back(entry.path().filename().string());
  }
  std::sort(present.begin(), present.end());
  throw std::runtime_error(error_message(
      where, "one of " + join_names(kCheckpointFiles),
      present.empty() ? std::string("an empty folder")
                      : "a folder with " + join_names(present),
      "point at the folder save_pretrained wrote, or at the weights file"));
}

std::string LoadReport::summary() const {
  std::string s = "loaded " + std::to_string(loaded) + " tensors";
  s += "; missing " + (missing.empty() ? "0" : list_names(missing));
  s += "; unexpected " + (unexpected.empty() ? "0" : list_names(unexpected));
  return s;
}

namespace {
// A module's parameters, then its buffers, under their full names: what a
// state dict holds.
std::vector<std::pair<std::string, at::Tensor>> named_tensors(
    const torch::nn::Module& module) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    if (p.value().defined())
      out.emplace_back(p.key(), p.value());
  }
  for (const auto& b : module.named_buffers(/*recurse=*/true)) {
    if (b.value().defined())
      out.emplace_back(b.key(), b.value());
  }
  return out;
}
}  // namespace

LoadReport load_state_dict(torch::nn::Module& module, const StateDict& sd,
                           const LoadOptions& options) {
  const auto ignore_unexpected =
      compile(options.ignore_unexpected, "ignore_unexpected");
  const auto ignore_missing = compile(options.ignore_missing, "ignore_missing");

  const auto named = named_tensors(module);
  std::map<std::string, at::Tensor> targets(named.begin(), named.end());

  // Pass 1: match names and check shapes; nothing is written yet.
  LoadReport report;
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;  // (dst, src)
  std::set<std::string> assigned;
  std::vector<std::string> mismatches;
  for (const auto& [name, src] : sd) {
    std::string target = name;
    if (!targets.count(name)) {
      const std::string renamed = legacy_rename(name);
      // The renamed tensor wins only if the checkpoint lacks the new name.
      if (renamed != name && targets.count(renamed) && !sd.count(renamed)) {
        target = renamed;
      }
    }
    const auto it = targets.find(target);
    if (it == targets.end()) {
      if (!matches_any(name, ignore_unexpected)) {
        report.unexpected.push_back(name);
      }
      continue;
    }
    assigned.insert(target);
    if (!src.defined() || src.sizes() != it->second.sizes()) {
      mismatches.push_back(
          "'" + name + "': model " + shape_str(it->second.sizes()) +
          ", checkpoint " +
          (src.defined() ? shape_str(src.sizes()) : "undefined tensor"));
      continue;
    }
    // Precision may change (an fp16 checkpoint into fp32 weights), the kind
    // of number may not: integer data in a float weight is a wrong file.
    if (dtype_kind(src.scalar_type()) != dtype_kind(it->second.scalar_type())) {
      mismatches.push_back(
          "'" + name + "': model " +
          std::string(c10::toString(it->second.scalar_type())) +
          ", checkpoint " + std::string(c10::toString(src.scalar_type())));
      continue;
    }
    copies.emplace_back(it->second, src);
  }
  if (!mismatches.empty()) {
    std::string got = std::to_string(mismatches.size()) + " mismatches";
    for (const auto& m : mismatches) {
      got += "\n  " + m;
    }
    throw std::runtime_error(
        error_message("load_state_dict",
                      "checkpoint shapes and dtype kinds equal to the model's",
                      got, "is this checkpoint for this model/config?"));
  }

  // A model tensor tied to a loaded one (same memory, e.g. an output
  // projection sharing the embedding) is loaded through the tie; HF drops
  // such names from checkpoints.
  std::set<std::pair<const void*, std::vector<int64_t>>> loaded_memory;
  for (const auto& [dst, src] : copies) {
    if (dst.numel() > 0) {
      loaded_memory.emplace(dst.data_ptr(), dst.sizes().vec());
    }
  }
  for (const auto& [name, t] : targets) {
    if (assigned.count(name) || matches_any(name, ignore_missing)) {
      continue;
    }
    if (t.numel() > 0 && loaded_memory.count({t.data_ptr(), t.sizes().vec()})) {
      continue;
    }
    report.missing.push_back(name);
  }
  if (options.strict &&
      (!report.missing.empty() || !report.unexpected.empty())) {
    throw std::runtime_error(error_message(
        "load_state_dict (strict)",
        "every model tensor in the checkpoint and no others",
        "missing " +
            (report.missing.empty() ? "0" : list_names(report.missing)) +
            "; unexpected " +
            (report.unexpected.empty() ? "0" : list_names(report.unexpected)),
        "ignore_missing / ignore_unexpected take regexes for names that are "
        "meant to differ"));
  }

  // Pass 2: copy. copy_ converts dtype and device; with names and shapes
  // validated it can only fail for lack of memory.
  torch::NoGradGuard no_grad;
  for (auto& [dst, src] : copies) {
    dst.copy_(src);
  }
  report.loaded = copies.size();
  return report;
}

void save_state_dict(const torch::nn::Module& module, const fs::path& path,
                     const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, at::Tensor>> tensors =
      named_tensors(module);
  std::map<std::string, std::string> meta = metadata;
  meta.emplace("format", "pt");  // kept if the caller set it
  save_safetensors(path, tensors, meta);
}

}  // namespace peftcpp::models
