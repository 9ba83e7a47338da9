#include "models/encoder/sequence_classifier.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>

#include <set>
#include <stdexcept>

#include "common/error.h"

namespace peftcpp::models {

SequenceClassifierImpl::SequenceClassifierImpl(const EncoderConfig& c)
    : config_(c),
      dropout_(c.classifier_dropout.value_or(c.hidden_dropout_prob)) {
  if (c.num_labels() < 1) {
    throw std::invalid_argument(error_message(
        "SequenceClassifier", "at least one label", "num_labels 0"));
  }
  const bool bert = c.family == EncoderFamily::kBert;
  // HF's RobertaForSequenceClassification builds its encoder without pooler.
  encoder = register_module(c.base_model_prefix(),
                            EncoderModel(c, /*add_pooling_layer=*/bert));
  if (bert) {
    classifier =
        register_module("classifier", Linear(c.hidden_size, c.num_labels()));
  } else {
    auto scope =
        register_module("classifier", std::make_shared<torch::nn::Module>());
    classifier_dense =
        scope->register_module("dense", Linear(c.hidden_size, c.hidden_size));
    classifier_out_proj = scope->register_module(
        "out_proj", Linear(c.hidden_size, c.num_labels()));
  }
}

at::Tensor SequenceClassifierImpl::head(const EncoderOutput& encoded) {
  const bool train = is_training();
  if (!classifier.is_empty()) {
    return classifier(at::dropout(encoded.pooler_output, dropout_, train));
  }
  at::Tensor x = encoded.last_hidden_state.select(/*dim=*/1, 0);  // <s> token
  x = at::tanh(classifier_dense(at::dropout(x, dropout_, train)));
  return classifier_out_proj(at::dropout(x, dropout_, train));
}

at::Tensor SequenceClassifierImpl::forward(const EncoderInputs& inputs) {
  return head(encoder(inputs));
}

ProblemType resolve_problem_type(ProblemType configured, int64_t num_labels,
                                 const at::Tensor& labels) {
  if (configured != ProblemType::kUnset)
    return configured;
  if (num_labels == 1)
    return ProblemType::kRegression;
  if (labels.defined() &&
      (labels.scalar_type() == at::kLong || labels.scalar_type() == at::kInt)) {
    return ProblemType::kSingleLabelClassification;
  }
  return ProblemType::kMultiLabelClassification;
}

at::Tensor sequence_classification_loss(const at::Tensor& logits,
                                        const at::Tensor& labels,
                                        ProblemType problem_type) {
  const int64_t num_labels = logits.size(-1);
  switch (resolve_problem_type(problem_type, num_labels, labels)) {
    case ProblemType::kRegression:
      if (num_labels == 1) {
        return at::mse_loss(logits.squeeze(),
                            labels.squeeze().to(logits.dtype()));
      }
      return at::mse_loss(logits, labels.to(logits.dtype()));
    case ProblemType::kSingleLabelClassification:
      return at::cross_entropy_loss(logits.view({-1, num_labels}),
                                    labels.view({-1}).to(at::kLong));
    case ProblemType::kMultiLabelClassification:
      return at::binary_cross_entropy_with_logits(logits,
                                                  labels.to(logits.dtype()));
    case ProblemType::kUnset:
      break;
  }
  throw std::logic_error(
      "[sequence_classification_loss] unresolved problem type");
}

at::Tensor mean_pool(const at::Tensor& hidden,
                     const at::Tensor& attention_mask) {
  // [B, T] -> [B, T, 1] in the hidden dtype
  const at::Tensor m = attention_mask.unsqueeze(-1).to(hidden.dtype());
  return (hidden * m).sum(/*dim=*/1) / at::clamp_min(m.sum(/*dim=*/1), 1e-9);
}

at::Tensor cls_pool(const at::Tensor& hidden) {
  return hidden.select(1, 0);
}

namespace {

// transformers' _init_weights for BERT, one parameter of `owner` at a time:
// linear and embedding weights ~ N(0, initializer_range) (the padding row
// zero), biases zero, LayerNorm weight one and bias zero.
void init_parameter(torch::nn::Module& owner, const std::string& name,
                    at::Tensor& p, const EncoderConfig& c) {
  if (owner.as<LinearImpl>() != nullptr) {
    if (name == "weight")
      torch::nn::init::normal_(p, 0.0, c.initializer_range);
    else
      torch::nn::init::zeros_(p);
  } else if (auto* emb = owner.as<torch::nn::EmbeddingImpl>()) {
    torch::nn::init::normal_(p, 0.0, c.initializer_range);
    if (emb->options.padding_idx())
      p[*emb->options.padding_idx()].zero_();
  } else if (owner.as<torch::nn::LayerNormImpl>() != nullptr) {
    if (name == "weight")
      torch::nn::init::ones_(p);
    else
      torch::nn::init::zeros_(p);
  }
}

// Initialises the parameters whose full names `select` accepts.
template <typename Select>
void init_selected(torch::nn::Module& module, const EncoderConfig& c,
                   const Select& select) {
  torch::NoGradGuard no_grad;
  for (const auto& item : module.named_modules("", /*include_self=*/true)) {
    for (auto& p : item.value()->named_parameters(/*recurse=*/false)) {
      const std::string full =
          item.key().empty() ? p.key() : item.key() + "." + p.key();
      if (select(full))
        init_parameter(*item.value(), p.key(), p.value(), c);
    }
  }
}

}  // namespace

void init_encoder_weights(torch::nn::Module& module, const EncoderConfig& c) {
  init_selected(module, c, [](const std::string&) { return true; });
}

void init_encoder_weights(torch::nn::Module& module, const EncoderConfig& c,
                          const std::vector<std::string>& names) {
  const std::set<std::string> wanted(names.begin(), names.end());
  init_selected(module, c,
                [&](const std::string& n) { return wanted.count(n) > 0; });
}

}  // namespace peftcpp::models
