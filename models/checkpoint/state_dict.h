#pragma once
// Hugging Face checkpoints in and out of torch::nn::Module trees whose
// parameters carry HF's names: finding the weights in a model folder
// (safetensors first, sharded or not, then pytorch_model.bin), loading them
// with a report of missing / unexpected names, and saving as safetensors.

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace peftcpp::models {

/// Checkpoint tensors by HF name.
using StateDict = std::map<std::string, at::Tensor>;

/// Reads all weights of a checkpoint into CPU tensors (safetensors ones are
/// zero-copy views of the mapped files). `dir_or_file` is a model folder
/// holding, in this order of preference, model.safetensors,
/// model.safetensors.index.json (+ shards), pytorch_model.bin or
/// pytorch_model.bin.index.json (+ shards); or one of those files itself, or
/// any single .safetensors / torch.save file. std::runtime_error naming the
/// files looked for, a missing shard, or the broken file.
StateDict load_checkpoint(const std::filesystem::path& dir_or_file);

/// How load_state_dict treats names that do not line up.
struct LoadOptions {
  /// Throw (before changing anything) if any name is missing or unexpected.
  bool strict = false;
  /// Regexes (std::regex, searched anywhere in the name) of checkpoint names
  /// the model is known not to have; they are neither loaded nor reported.
  std::vector<std::string> ignore_unexpected;
  /// Regexes of model names the checkpoint is known to lack; not reported.
  std::vector<std::string> ignore_missing;
};

/// What load_state_dict did.
struct LoadReport {
  /// Model parameters / buffers that got no checkpoint tensor.
  std::vector<std::string> missing;
  /// Checkpoint tensors with no model parameter / buffer of that name.
  std::vector<std::string> unexpected;
  /// Number of model tensors written.
  size_t loaded = 0;
  /// One line: "loaded N tensors; missing (k): ...; unexpected (m): ...".
  std::string summary() const;
};

/// Copies `sd` into `module`'s named_parameters() and named_buffers()
/// (without grad, converting dtype and device to the target's). A checkpoint
/// name ending in "LayerNorm.gamma" / "LayerNorm.beta" (old TF-converted
/// checkpoints) loads into "LayerNorm.weight" / "LayerNorm.bias". Everything
/// is validated before the first copy: shape mismatches are collected and
/// thrown together as one std::runtime_error (each name with both shapes),
/// and with options.strict missing / unexpected names throw too, so a
/// failed load leaves the module untouched. A model tensor tied to a loaded
/// one (same memory) counts as loaded. std::invalid_argument for a bad regex.
LoadReport load_state_dict(torch::nn::Module& module, const StateDict& sd,
                           const LoadOptions& options = {});

/// Writes `module`'s parameters and buffers under their names to a
/// safetensors file (atomically). Tied tensors are written once per name, as
/// separate copies, which HF loads fine. `metadata` gets {"format": "pt"}
/// unless it sets "format" itself; transformers expects it.
void save_state_dict(const torch::nn::Module& module,
                     const std::filesystem::path& path,
                     const std::map<std::string, std::string>& metadata = {});

}  // namespace peftcpp::models
