#pragma once
// A tiny BERT classifier with LoRA and a learnable synthetic task, for the
// training-loop tests that need no files: the label is whether the first
// text token is below 50, which a 2-layer model learns in a few epochs.

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <string>

#include "data/dataset/tokenized_dataset.h"
#include "models/encoder/load_encoder.h"
#include "peft/peft_model.h"
#include "tests/peft/tiny_peft_models.h"
#include "trainers/peft_classifier.h"

namespace peftcpp::testing {

/// `n` rows of random token ids (CLS=2 ... SEP=3), lengths 4..12.
inline data::TokenizedDataset synthetic_dataset(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  data::TokenizedDataset d;
  d.kind = data::TaskKind::kClassification;
  d.label_names = {"low", "high"};
  for (int64_t i = 0; i < n; ++i) {
    const int len = 4 + static_cast<int>(rng() % 9);
    const bool high = rng() % 2 == 1;
    d.input_ids.push_back(2);
    for (int t = 1; t < len - 1; ++t)
      d.input_ids.push_back((high ? 60 : 10) + static_cast<int>(rng() % 5));
    d.input_ids.push_back(3);
    d.token_type_ids.resize(d.input_ids.size(), 0);
    d.offsets.push_back(static_cast<int64_t>(d.input_ids.size()));
    d.labels.push_back(high ? 1.0f : 0.0f);
  }
  return d;
}

/// A 2-layer, hidden-32 BERT with a 2-label head (dropout as given) and a
/// LoRA adapter on query/value; same seed, same weights.
inline trainers::PeftClassifier tiny_lora_classifier(uint64_t seed,
                                                     double dropout = 0.1) {
  torch::manual_seed(seed);
  models::LoadedEncoder m;
  m.config = tiny_config("bert");  // the PEFT tests' tiny BERT
  models::EncoderConfig& c = m.config;
  c.architectures = {"BertForSequenceClassification"};
  c.hidden_dropout_prob = dropout;
  c.attention_probs_dropout_prob = dropout;
  c.id2label = {"low", "high"};
  // BERT's 0.02 would make a 2-layer random model pass almost nothing of
  // its tokens to [CLS]; wider weights let it learn in a few dozen steps.
  c.initializer_range = 0.3;
  m.classifier = models::SequenceClassifier(c);
  models::init_encoder_weights(*m.classifier, c);
  m.classifier->eval();
  peft::PeftModel model(std::move(m));
  peft::LoraConfig lora;
  lora.r = 4;
  lora.lora_alpha = 8;
  lora.lora_dropout = dropout;
  peft::AdapterConfig config;
  config.method = lora;
  model->add_adapter("default", config);
  return trainers::PeftClassifier(model);
}

}  // namespace peftcpp::testing
