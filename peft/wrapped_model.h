#pragma once
// The model a PeftModel wraps, behind the little that differs between model
// families. Methods only see the module tree under Hugging Face's names
// (where their hooks go), ModelInfo (what PEFT reads from model.config) and
// the input embedding table; how virtual tokens and prefixes enter a forward
// is up to the family's input type (PeftModel::forward for EncoderInputs
// and for DecoderInputs).

#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>

#include <memory>
#include <string>

#include "models/decoder/load_decoder.h"
#include "models/encoder/load_encoder.h"
#include "peft/adapter.h"

namespace peftcpp::peft {

/// A loaded model of some family, as PEFT methods see it.
class WrappedModel {
 public:
  virtual ~WrappedModel() = default;
  /// The model with Hugging Face's module names ("bert.encoder.layer.0...",
  /// "model.layers.0...", "transformer.h.0...", heads): what methods hook
  /// into.
  virtual std::shared_ptr<torch::nn::Module> module() const = 0;
  /// What methods are told about the model.
  virtual ModelInfo info() const = 0;
  /// Whether the model ends in a sequence classification head.
  virtual bool has_classifier() const = 0;
  /// Whether the model is a causal language model (next-token logits).
  virtual bool is_causal_lm() const = 0;
  /// The input embedding table (prompt methods).
  virtual torch::nn::Embedding word_embeddings() const = 0;
  /// The model class for messages ("BertForSequenceClassification",
  /// "LlamaForCausalLM", ...).
  virtual std::string model_class() const = 0;
};

/// A BERT-family encoder, with or without a classification head.
class WrappedEncoder final : public WrappedModel {
 public:
  explicit WrappedEncoder(models::LoadedEncoder loaded)
      : loaded(std::move(loaded)) {}
  std::shared_ptr<torch::nn::Module> module() const override;
  ModelInfo info() const override;
  bool has_classifier() const override { return loaded.has_classifier(); }
  bool is_causal_lm() const override { return false; }
  torch::nn::Embedding word_embeddings() const override;
  std::string model_class() const override;

  models::LoadedEncoder loaded;
};

/// A decoder-only model: a causal LM or a sequence classifier.
class WrappedDecoder final : public WrappedModel {
 public:
  explicit WrappedDecoder(models::LoadedDecoder loaded)
      : loaded(std::move(loaded)) {}
  std::shared_ptr<torch::nn::Module> module() const override;
  /// Decoders with a num_key_value_heads setting (the LLaMA family) report
  /// it with head_dim; GPT-2 reports its Conv1D projections.
  ModelInfo info() const override;
  bool has_classifier() const override { return loaded.has_classifier(); }
  bool is_causal_lm() const override { return !loaded.causal_lm.is_empty(); }
  torch::nn::Embedding word_embeddings() const override;
  std::string model_class() const override;

  models::LoadedDecoder loaded;
};

}  // namespace peftcpp::peft
