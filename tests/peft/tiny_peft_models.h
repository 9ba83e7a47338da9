#pragma once
// Tiny random BERT and RoBERTa sequence classifiers (the configuration of
// tests/fixtures/make_models.py) and a padded batch for them, for the PEFT
// tests that need no reference files.

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>

#include "models/encoder/load_encoder.h"
#include "models/encoder/sequence_classifier.h"

namespace peftcpp::testing {

inline models::EncoderConfig tiny_config(const std::string& family) {
  models::EncoderConfig c;
  c.model_type = family;
  if (family == "roberta") {
    c.family = models::EncoderFamily::kRoberta;
    c.pad_token_id = 1;
    c.max_position_embeddings = 66;
    c.type_vocab_size = 1;
  } else {
    c.max_position_embeddings = 64;
  }
  c.vocab_size = 99;
  c.hidden_size = 32;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.intermediate_size = 37;
  c.hidden_dropout_prob = 0.1;
  c.attention_probs_dropout_prob = 0.1;
  c.id2label = {"a", "b", "c"};
  return c;
}

// A tiny classifier with the seed's random weights (same seed, same model).
inline models::LoadedEncoder tiny_model(const std::string& family,
                                        uint64_t seed) {
  torch::manual_seed(seed);
  models::LoadedEncoder m;
  m.config = tiny_config(family);
  m.classifier = models::SequenceClassifier(m.config);
  models::init_encoder_weights(*m.classifier, m.config);
  m.classifier->eval();
  return m;
}

inline models::EncoderInputs batch(const std::string& family) {
  torch::manual_seed(7);
  const int64_t pad = family == "roberta" ? 1 : 0;
  models::EncoderInputs in;
  in.input_ids = torch::randint(3, 99, {3, 9}, torch::kLong);
  in.attention_mask = torch::ones({3, 9}, torch::kLong);
  in.attention_mask.index_put_({1, torch::indexing::Slice(6)}, 0);
  in.attention_mask.index_put_({2, torch::indexing::Slice(3)}, 0);
  in.input_ids.masked_fill_(in.attention_mask == 0, pad);
  if (family == "bert") {
    in.token_type_ids = torch::zeros({3, 9}, torch::kLong);
    in.token_type_ids.index_put_(
        {torch::indexing::Slice(), torch::indexing::Slice(4)}, 1);
  }
  return in;
}

/// Copies of every parameter of `m`, by name.
inline std::map<std::string, at::Tensor> snapshot(torch::nn::Module& m) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : m.named_parameters())
    out[p.key()] = p.value().detach().clone();
  return out;
}

}  // namespace peftcpp::testing
