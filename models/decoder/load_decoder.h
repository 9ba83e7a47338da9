#pragma once
// Builds a decoder-only model from a Hugging Face folder (config.json +
// model.safetensors / sharded / pytorch_model.bin) or a GGUF file, the way
// transformers' from_pretrained does: the head follows config.architectures,
// the backbone prefix ("transformer." / "model.") is added when a bare
// checkpoint goes under a head, GPT-2's Conv1D weights are transposed into
// Linear layout, a new head starts from transformers' initialisation, and
// every missing or unexpected key is reported.

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <filesystem>
#include <string>
#include <vector>

#include "models/checkpoint/state_dict.h"
#include "models/decoder/decoder_model.h"

namespace peftcpp::models {

/// Which model to build on top of the checkpoint.
enum class DecoderHead {
  kAuto,                    ///< as config.architectures says (default LM)
  kCausalLM,                ///< ...ForCausalLM / GPT2LMHeadModel
  kSequenceClassification,  ///< ...ForSequenceClassification
};

/// How to load.
struct LoadDecoderOptions {
  DecoderHead head = DecoderHead::kAuto;
  c10::Device device = c10::kCPU;
  c10::ScalarType dtype = c10::kFloat;
  /// Throw when the checkpoint lacks weights of the body or has weights the
  /// model does not use.
  bool strict = false;
  /// Replaces config.json's labels (id2label in id order) for a
  /// classification head.
  std::vector<std::string> id2label;
  /// Replaces config.json's problem_type when set (not kUnset).
  ProblemType problem_type = ProblemType::kUnset;
};

/// A loaded model: exactly one of `causal_lm` and `classifier` is set.
struct LoadedDecoder {
  DecoderConfig config;
  CausalLM causal_lm{nullptr};
  DecoderSequenceClassifier classifier{nullptr};
  std::vector<std::string> unexpected_keys;
  std::vector<std::string> missing_keys;

  /// missing_keys other than a new head's ("score.*").
  std::vector<std::string> missing_body_keys() const;
  /// The module that was built (for parameters(), to(), eval(), ...).
  torch::nn::Module& module();
  /// The backbone inside.
  DecoderBackbone& backbone();
  bool has_classifier() const { return !classifier.is_empty(); }
};

/// Loads a model folder or a .gguf file. Throws std::runtime_error naming
/// the file for a missing or malformed config or checkpoint, a shape
/// mismatch (nothing is half-loaded) or an unsupported architecture.
LoadedDecoder load_decoder(const std::filesystem::path& path,
                           const LoadDecoderOptions& options = {});

/// Loads a .gguf file (dequantized to options.dtype): the config and
/// weights transformers' gguf_file= loading builds, then build_decoder.
LoadedDecoder load_decoder_gguf(const std::filesystem::path& path,
                                const LoadDecoderOptions& options = {});

/// Builds the model of `config` and loads `weights` (Hugging Face names) into
/// it; `source` names the checkpoint in messages. What load_decoder does once
/// the files are read.
LoadedDecoder build_decoder(DecoderConfig config, StateDict weights,
                            const LoadDecoderOptions& options,
                            const std::string& source);

/// Whether `path` holds a decoder this library implements: a .gguf file or
/// a folder whose config.json has a decoder model_type.
bool is_decoder_checkpoint(const std::filesystem::path& path);

}  // namespace peftcpp::models
