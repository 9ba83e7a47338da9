#include "trainers/peft_causal_lm.h"

#include <ATen/ATen.h>
#include <ATen/core/Reduction.h>

#include <stdexcept>
#include <string>

#include "common/error.h"

namespace peftcpp::trainers {

namespace {

constexpr int64_t kIgnoreIndex = -100;

std::string shape_of(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d)
    s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

}  // namespace

CausalLMLossSum causal_lm_loss_sum(const at::Tensor& logits,
                                   const at::Tensor& labels) {
  if (logits.dim() != 3 || labels.dim() != 2 ||
      logits.size(0) != labels.size(0) || logits.size(1) < labels.size(1)) {
    throw std::invalid_argument(error_message(
        "causal_lm_loss",
        "logits [B, T, V] (or [B, P + T, V]) and labels [B, T]",
        "logits " + shape_of(logits) + " and labels " + shape_of(labels)));
  }
  at::Tensor targets = labels.to(logits.device(), at::kLong);
  // Prompt tuning puts P virtual tokens in front; they predict nothing.
  if (const int64_t p = logits.size(1) - labels.size(1); p > 0) {
    targets =
        at::cat({at::full({labels.size(0), p}, kIgnoreIndex, targets.options()),
                 targets},
                /*dim=*/1);
  }
  // Position t predicts token t + 1: labels padded with -100 on the right
  // and shifted left, as transformers' ForCausalLMLoss.
  const at::Tensor shifted = at::constant_pad_nd(targets, {0, 1}, kIgnoreIndex)
                                 .slice(/*dim=*/1, /*start=*/1);
  const int64_t vocab = logits.size(2);
  CausalLMLossSum out;
  out.sum = at::cross_entropy_loss(
      logits.to(at::kFloat).reshape({-1, vocab}), shifted.reshape({-1}),
      /*weight=*/{}, at::Reduction::Sum, kIgnoreIndex);
  out.tokens = shifted.ne(kIgnoreIndex).sum().item<int64_t>();
  return out;
}

at::Tensor causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels) {
  const CausalLMLossSum s = causal_lm_loss_sum(logits, labels);
  // The sum over no targets is 0 with zero gradients; transformers divides
  // by the 0 count and gets NaN.
  return s.tokens > 0 ? s.sum / static_cast<double>(s.tokens) : s.sum;
}

PeftCausalLM::PeftCausalLM(peft::PeftModel model) : model_(std::move(model)) {
  if (!model_->is_decoder()) {
    throw std::invalid_argument(error_message(
        "PeftCausalLM", "a PeftModel over a decoder-only model",
        "one over an encoder", "encoders train through PeftClassifier"));
  }
}

std::vector<std::pair<std::string, at::Tensor>>
PeftCausalLM::trainable_parameters() {
  // PEFT decides trainability by structure (the active adapter, and a
  // classifier's modules_to_save); the optimizer takes exactly those.
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : model_->named_parameters(/*recurse=*/true)) {
    if (item.value().requires_grad())
      out.emplace_back(item.key(), item.value());
  }
  return out;
}

at::Tensor PeftCausalLM::forward(const data::Batch& batch) {
  models::DecoderInputs inputs;
  inputs.input_ids = batch.input_ids;
  inputs.attention_mask = batch.attention_mask;
  return model_->forward(inputs);
}

void PeftCausalLM::set_training(bool training) {
  model_->train(training);
}

void PeftCausalLM::save_adapter(const std::filesystem::path& dir) {
  model_->save_adapter(dir);
}

}  // namespace peftcpp::trainers
