#pragma once
// The TrainableModel for an encoder with a classification / regression head
// and PEFT adapters (peft::PeftModel).

#include "peft/peft_model.h"
#include "trainers/trainable_model.h"

namespace peftcpp::trainers {

/// Trains the active adapter of `model` (and its modules_to_save head).
class PeftClassifier : public TrainableModel {
 public:
  explicit PeftClassifier(peft::PeftModel model) : model_(std::move(model)) {}

  std::vector<std::pair<std::string, at::Tensor>> trainable_parameters()
      override;
  at::Tensor forward(const data::Batch& batch) override;
  void set_training(bool training) override;
  void save_adapter(const std::filesystem::path& dir) override;

  peft::PeftModel& model() { return model_; }

 private:
  peft::PeftModel model_;
};

}  // namespace peftcpp::trainers
