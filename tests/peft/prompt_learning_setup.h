#pragma once
// A tiny encoder and the AdapterContext a PeftModel would give a prompt
// method, plus small helpers, for the prompt-learning tests.

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "models/encoder/encoder_model.h"
#include "peft/adapter.h"
#include "tests/test_paths.h"

namespace peftcpp::testing::prompt {

using peftcpp::models::EncoderConfig;
using peftcpp::models::EncoderModel;
using peftcpp::peft::Adapter;
using peftcpp::peft::AdapterContext;
using peftcpp::peft::NamedTensors;

constexpr int64_t kVocab = 40;
constexpr int64_t kHidden = 16;
constexpr int64_t kLayers = 2;
constexpr int64_t kHeads = 4;

inline EncoderConfig tiny_config() {
  EncoderConfig c;
  c.vocab_size = kVocab;
  c.hidden_size = kHidden;
  c.num_hidden_layers = kLayers;
  c.num_attention_heads = kHeads;
  c.intermediate_size = 32;
  c.max_position_embeddings = 64;
  c.hidden_dropout_prob = 0.0;
  c.attention_probs_dropout_prob = 0.0;
  return c;
}

// A tiny encoder and the context a PeftModel would give a method: the
// prompt encoders live in a ModuleDict registered as "prompt_encoder" on a
// holder module, as PEFT's PeftModel.prompt_encoder.
struct Setup {
  EncoderModel model{nullptr};
  std::shared_ptr<torch::nn::Module> holder =
      std::make_shared<torch::nn::Module>();
  torch::nn::ModuleDict dict{nullptr};
  AdapterContext ctx;

  explicit Setup(bool inference_mode = false) {
    torch::manual_seed(1);
    model = EncoderModel(tiny_config(), /*add_pooling_layer=*/true);
    dict = holder->register_module("prompt_encoder", torch::nn::ModuleDict());
    ctx.root = model.ptr().get();
    ctx.info.model_type = "bert";
    ctx.info.hidden_size = kHidden;
    ctx.info.num_layers = kLayers;
    ctx.info.num_attention_heads = kHeads;
    ctx.info.vocab_size = kVocab;
    ctx.word_embeddings = model->embeddings->word_embeddings;
    ctx.prompt_encoders = dict;
    ctx.inference_mode = inference_mode;
  }

  at::Tensor vocabulary() const {
    return model->embeddings->word_embeddings->weight.detach();
  }

  // Names and shapes of the holder's parameters (what a PeftModel reports).
  std::map<std::string, std::vector<int64_t>> holder_parameters() const {
    std::map<std::string, std::vector<int64_t>> out;
    for (const auto& p : holder->named_parameters())
      out[p.key()] = p.value().sizes().vec();
    return out;
  }
};

inline std::map<std::string, std::vector<int64_t>> shapes_of(
    const NamedTensors& t) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& [name, tensor] : t)
    out[name] = tensor.sizes().vec();
  return out;
}

inline at::Tensor parameter(const Adapter& adapter, const std::string& name) {
  for (const auto& [n, t] : adapter.named_parameters()) {
    if (n == name)
      return t;
  }
  FAIL("no parameter " << name);
  return {};
}

// Fills every parameter of the adapter with fresh random values, so a table
// copied wrongly or an encoder skipped shows.
inline void randomize(const Adapter& adapter) {
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : adapter.named_parameters())
    t.copy_(torch::randn_like(t) * 0.5);
}

// A BERT tokenizer folder (vocab.txt only): [PAD] [UNK] [CLS] [SEP] [MASK]
// dull ! good, so "Dull!" -> [CLS] dull ! [SEP] = 2 5 6 3.
inline void write_vocab(const ScratchDir& dir) {
  std::ofstream out(dir / "vocab.txt");
  for (const char* t :
       {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "dull", "!", "good"})
    out << t << "\n";
}

inline at::Tensor rows(const at::Tensor& table, std::vector<int64_t> ids) {
  return table.index_select(0, torch::tensor(ids, torch::kLong));
}

}  // namespace peftcpp::testing::prompt
