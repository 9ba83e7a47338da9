#pragma once
// Builds a BERT-family model from a Hugging Face folder (config.json +
// model.safetensors / sharded / pytorch_model.bin), the way transformers'
// from_pretrained does: the head follows config.architectures, the
// checkpoint's base-model prefix ("bert." / "roberta.") is added or removed
// as needed, weights a checkpoint lacks (a new head) are initialised as
// transformers would, and every missing or unexpected key is reported.

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <filesystem>
#include <string>
#include <vector>

#include "models/encoder/sequence_classifier.h"

namespace peftcpp::models {

/// Which model to build on top of the checkpoint.
enum class EncoderHead {
  kAuto,                    ///< as config.architectures says
  kNone,                    ///< the bare encoder (BertModel / RobertaModel)
  kSequenceClassification,  ///< ...ForSequenceClassification
};

/// How to load.
struct LoadEncoderOptions {
  EncoderHead head = EncoderHead::kAuto;
  c10::Device device = c10::kCPU;
  c10::ScalarType dtype = c10::kFloat;
  /// Throw when the checkpoint lacks weights the model has (other than a
  /// head being added) or has weights the model does not use.
  bool strict = false;
  /// Replaces config.json's labels (id2label in id order), as
  /// from_pretrained(..., id2label=...) does: a base checkpoint gets a fresh
  /// head of this size. Empty: the config's.
  std::vector<std::string> id2label;
  /// Replaces config.json's problem_type when set (not kUnset).
  ProblemType problem_type = ProblemType::kUnset;
};

/// A loaded model: exactly one of `encoder` (no head) and `classifier` is set.
struct LoadedEncoder {
  EncoderConfig config;
  EncoderModel encoder{nullptr};
  SequenceClassifier classifier{nullptr};
  /// Checkpoint keys the model has no place for, and model weights the
  /// checkpoint did not provide (initialised fresh), by model name.
  std::vector<std::string> unexpected_keys;
  std::vector<std::string> missing_keys;

  /// missing_keys other than the head's ("classifier.*"): weights of the
  /// encoder body that are random. Non-empty means the checkpoint does not
  /// fit the config.
  std::vector<std::string> missing_body_keys() const;

  /// The module that was built (for parameters(), to(), eval(), ...).
  torch::nn::Module& module();
  /// The encoder inside, with or without a head.
  EncoderModel& base();
  bool has_classifier() const { return !classifier.is_empty(); }
};

/// Loads `dir`. Throws std::runtime_error naming the file for a missing or
/// malformed config or checkpoint, a shape mismatch (nothing is half-loaded)
/// or an unsupported architecture.
LoadedEncoder load_encoder(const std::filesystem::path& dir,
                           const LoadEncoderOptions& options = {});

/// "float32" / "fp32", "bfloat16" / "bf16", "float16" / "fp16" -> dtype.
c10::ScalarType parse_dtype(const std::string& name);

}  // namespace peftcpp::models
