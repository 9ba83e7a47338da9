#pragma once
// transformers' BertForSequenceClassification and
// RobertaForSequenceClassification: an encoder registered under its family's
// prefix ("bert" / "roberta") and a head registered as "classifier".
//   BERT:    logits = classifier(dropout(pooler_output))
//   RoBERTa: logits = out_proj(dropout(tanh(dense(dropout(h[:, 0])))))
// One head covers single-label and multi-label classification and
// regression (num_labels == 1); the problem type only changes the loss.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

#include "models/encoder/encoder_model.h"

namespace peftcpp::models {

/// An encoder with a sequence classification / regression head.
class SequenceClassifierImpl : public torch::nn::Module {
 public:
  explicit SequenceClassifierImpl(const EncoderConfig& config);

  /// Returns logits [B, num_labels].
  at::Tensor forward(const EncoderInputs& inputs);

  /// The head alone on encoder outputs (used by forward; exposed so callers
  /// that already ran the encoder do not run it twice).
  at::Tensor head(const EncoderOutput& encoded);

  const EncoderConfig& config() const { return config_; }
  EncoderModel encoder{nullptr};

  /// BERT layout: "classifier" is one Linear [num_labels, hidden].
  Linear classifier{nullptr};
  /// RoBERTa layout: "classifier.dense" and "classifier.out_proj".
  Linear classifier_dense{nullptr};
  Linear classifier_out_proj{nullptr};

 private:
  EncoderConfig config_;
  double dropout_;
};
TORCH_MODULE(SequenceClassifier);

/// The problem type transformers would use for these logits and labels:
/// the config's when set; else regression for one label, single-label for
/// integer labels, multi-label otherwise.
ProblemType resolve_problem_type(ProblemType configured, int64_t num_labels,
                                 const at::Tensor& labels);

/// transformers' loss for each problem type: MSE (regression), cross-entropy
/// (single label, labels [B] int64), BCE-with-logits (multi label, labels
/// [B, num_labels] float).
at::Tensor sequence_classification_loss(const at::Tensor& logits,
                                        const at::Tensor& labels,
                                        ProblemType problem_type);

/// Mean of the token vectors that the mask keeps, as sentence-transformers
/// computes sentence embeddings: [B, T, H], [B, T] -> [B, H].
at::Tensor mean_pool(const at::Tensor& hidden,
                     const at::Tensor& attention_mask);

/// The first token's vector ([CLS] / <s>): [B, T, H] -> [B, H].
at::Tensor cls_pool(const at::Tensor& hidden);

/// Initialises parameters as transformers' _init_weights does for BERT:
/// linear and embedding weights ~ N(0, initializer_range), biases zero,
/// LayerNorm weight one and bias zero, padding embedding row zero. Used for
/// heads a base checkpoint does not carry.
void init_encoder_weights(torch::nn::Module& module,
                          const EncoderConfig& config);

/// The same, for the named parameters only (names as module.named_parameters()
/// gives them, e.g. "classifier.weight"): what a loader uses for the weights a
/// checkpoint lacks.
void init_encoder_weights(torch::nn::Module& module,
                          const EncoderConfig& config,
                          const std::vector<std::string>& names);

}  // namespace peftcpp::models
