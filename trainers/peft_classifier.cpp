#include "trainers/peft_classifier.h"

#include "peft/head_labels.h"

namespace peftcpp::trainers {

std::vector<std::pair<std::string, at::Tensor>>
PeftClassifier::trainable_parameters() {
  // PEFT decides trainability by structure (the active adapter and its
  // modules_to_save copies); the optimizer takes exactly those.
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : model_->named_parameters(/*recurse=*/true)) {
    if (item.value().requires_grad())
      out.emplace_back(item.key(), item.value());
  }
  return out;
}

at::Tensor PeftClassifier::forward(const data::Batch& batch) {
  models::EncoderInputs inputs;
  inputs.input_ids = batch.input_ids;
  inputs.attention_mask = batch.attention_mask;
  inputs.token_type_ids = batch.token_type_ids;
  return model_->forward(inputs);
}

void PeftClassifier::set_training(bool training) {
  model_->train(training);
}

void PeftClassifier::save_adapter(const std::filesystem::path& dir) {
  model_->save_adapter(dir);
  // PEFT's folder does not say what the head's outputs mean.
  if (model_->base().has_classifier())
    peft::write_adapter_head(dir, model_->base().config);
}

}  // namespace peftcpp::trainers
