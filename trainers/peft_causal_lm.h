#pragma once
// The TrainableModel for a decoder-only model with PEFT adapters
// (peft::PeftModel over models::LoadedDecoder): a causal LM trained on
// instruction data (logits [B, T, vocab], next-token loss), or a decoder
// sequence classifier (logits [B, num_labels], PEFT's SEQ_CLS). Plus the
// causal-LM loss exactly as transformers computes it.
//
//   peft::PeftModel model(models::load_decoder("smollm2.gguf"));
//   model->add_adapter("default", lora_causal_lm_config);
//   trainers::PeftCausalLM trainable(model);
//   trainers::Trainer trainer(trainable, train, &dev, options, "", pad_id);

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "peft/peft_model.h"
#include "trainers/trainable_model.h"

namespace peftcpp::trainers {

/// Sum and count of the next-token cross-entropy terms of a batch.
struct CausalLMLossSum {
  at::Tensor sum;      ///< scalar float32 (differentiable)
  int64_t tokens = 0;  ///< positions whose shifted label is not -100
};

/// transformers' ForCausalLMLoss with reduction "sum": logits in float32,
/// labels shifted left by one (the last position predicts nothing), cross
/// entropy over positions whose label is not -100. Logits longer than the
/// labels (prompt tuning's P virtual tokens in front) get P labels of -100
/// in front, as PeftModelForCausalLM does. Throws std::invalid_argument
/// for logits that are not [B, T (+P), V] over labels [B, T].
CausalLMLossSum causal_lm_loss_sum(const at::Tensor& logits,
                                   const at::Tensor& labels);

/// The mean over target tokens: model(input_ids, labels=labels).loss in
/// transformers. A batch without a single target gives 0 (with a gradient
/// of zeros) where transformers gives NaN, so a packed row of prompt tokens
/// only does not stop a run.
at::Tensor causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels);

/// Trains the active adapter of a decoder-only `model`.
class PeftCausalLM : public TrainableModel {
 public:
  /// Throws std::invalid_argument when `model` wraps an encoder.
  explicit PeftCausalLM(peft::PeftModel model);

  std::vector<std::pair<std::string, at::Tensor>> trainable_parameters()
      override;
  /// Logits [B, T (+P), vocab] (causal LM) or [B, num_labels].
  at::Tensor forward(const data::Batch& batch) override;
  void set_training(bool training) override;
  /// PEFT's folder (task_type CAUSAL_LM or SEQ_CLS as configured).
  void save_adapter(const std::filesystem::path& dir) override;

  peft::PeftModel& model() { return model_; }

 private:
  peft::PeftModel model_;
};

}  // namespace peftcpp::trainers
