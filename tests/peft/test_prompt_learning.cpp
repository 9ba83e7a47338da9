// Prompt tuning, P-tuning and prefix tuning (peft/prompt_learning.h) on a
// tiny random encoder: PEFT's parameter names and shapes, the three prompt
// tuning initialisations, get_prompt's layouts, the saved form and its
// round trip (removal and errors: test_prompt_learning_errors.cpp). The
// bit-for-bit comparison with
// PEFT-written adapters is in the PeftModel's parity test.

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "models/encoder/encoder_model.h"
#include "peft/prompt_learning.h"
#include "tests/peft/prompt_learning_setup.h"
#include "tests/test_paths.h"
#include "tests/test_tensors.h"

using namespace peftcpp::peft;
using Catch::Contains;
using peftcpp::models::EncoderConfig;
using peftcpp::models::EncoderInputs;
using peftcpp::models::EncoderModel;
using peftcpp::testing::max_abs_diff;
using peftcpp::testing::ScratchDir;

using namespace peftcpp::testing::prompt;

// --- prompt tuning -----------------------------------------------------------

TEST_CASE(
    "Prompt tuning fills the config from the model and registers PEFT's "
    "parameter name",
    "[peft][prompt]") {
  Setup s;
  PromptTuningConfig config;
  config.num_virtual_tokens = 5;
  const auto adapter = add_prompt_tuning(s.ctx, "default", config);
  CHECK(config.token_dim == kHidden);
  CHECK(config.num_layers == kLayers);
  CHECK(config.num_attention_heads == kHeads);
  CHECK(adapter->name() == "default");
  CHECK(adapter->num_virtual_tokens() == 5);
  using Shapes = std::map<std::string, std::vector<int64_t>>;
  const Shapes expected{{"prompt_encoder.default.embedding.weight", {5, 16}}};
  CHECK(shapes_of(adapter->named_parameters()) == expected);
  CHECK(s.holder_parameters() == expected);
  // The adapter's tensors are the registered ones, not copies.
  CHECK(parameter(*adapter, "prompt_encoder.default.embedding.weight")
            .is_same(s.holder->named_parameters()
                         ["prompt_encoder.default.embedding.weight"]));
}

TEST_CASE(
    "Prompt tuning's virtual tokens are its table repeated over the "
    "batch, and nothing while disabled",
    "[peft][prompt]") {
  Setup s;
  PromptTuningConfig config;
  config.num_virtual_tokens = 4;
  const auto adapter = add_prompt_tuning(s.ctx, "pt", config);
  CHECK_FALSE(adapter->virtual_token_embeddings(2).defined());  // disabled
  adapter->set_enabled(true);
  const at::Tensor table =
      parameter(*adapter, "prompt_encoder.pt.embedding.weight");
  const at::Tensor v = adapter->virtual_token_embeddings(3);
  REQUIRE(v.sizes() == at::IntArrayRef{3, 4, kHidden});
  for (int64_t b = 0; b < 3; ++b)
    CHECK(torch::equal(v[b], table));
  CHECK(adapter->key_value_prefix(3).empty());
  // Trainable through the prompts.
  v.sum().backward();
  REQUIRE(table.grad().defined());
  CHECK(torch::allclose(table.grad(), torch::full_like(table, 3.0)));
  adapter->set_enabled(false);
  CHECK_FALSE(adapter->virtual_token_embeddings(3).defined());
}

TEST_CASE("RANDOM init draws the table from N(0, 1) as nn.Embedding does",
          "[peft][prompt]") {
  Setup s;
  PromptTuningConfig config;
  config.num_virtual_tokens = 64;
  config.prompt_tuning_init = PromptTuningInit::kRandom;
  const auto adapter = add_prompt_tuning(s.ctx, "default", config);
  const at::Tensor t =
      parameter(*adapter, "prompt_encoder.default.embedding.weight");
  CHECK(t.scalar_type() == at::kFloat);
  CHECK(std::abs(t.mean().item<double>()) < 0.1);
  CHECK(t.std().item<double>() == Approx(1.0).margin(0.1));
}

TEST_CASE(
    "TEXT init copies the word embeddings of the tokenized text, "
    "special tokens included, cut or cycled to num_virtual_tokens",
    "[peft][prompt]") {
  const ScratchDir dir("prompt-text");
  write_vocab(dir);
  // PEFT: tokenizer(text)["input_ids"] = [CLS] dull ! [SEP]; longer
  // prompts repeat the ids, shorter ones cut them.
  const std::map<int64_t, std::vector<int64_t>> cases{
      {5, {2, 5, 6, 3, 2}},
      {3, {2, 5, 6}},
      {4, {2, 5, 6, 3}},
      {9, {2, 5, 6, 3, 2, 5, 6, 3, 2}},
  };
  for (const auto& [P, ids] : cases) {
    DYNAMIC_SECTION("num_virtual_tokens " << P) {
      Setup s;
      PromptTuningConfig config;
      config.num_virtual_tokens = P;
      config.prompt_tuning_init = PromptTuningInit::kText;
      config.prompt_tuning_init_text = "Dull!";
      config.tokenizer_name_or_path = dir.path().string();
      const auto adapter = add_prompt_tuning(s.ctx, "default", config);
      const at::Tensor table =
          parameter(*adapter, "prompt_encoder.default.embedding.weight");
      CHECK(torch::equal(table, rows(s.vocabulary(), ids)));
      // A copy: training the prompt leaves the vocabulary alone.
      CHECK_FALSE(table.is_same(s.vocabulary()));
      CHECK(table.requires_grad());
      {
        torch::NoGradGuard no_grad;
        table.add_(1.0);
      }
      CHECK_FALSE(torch::equal(table, rows(s.vocabulary(), ids)));
    }
  }
}

TEST_CASE(
    "SAMPLE_VOCAB init copies the rows of token ids drawn after "
    "nn.Embedding's init, as PEFT draws them",
    "[peft][prompt]") {
  Setup s;
  // PEFT: nn.Embedding(P, D) (its N(0, 1) draws first), then
  // torch.randint(0, vocab, (P,)) from the same generator.
  torch::manual_seed(7);
  torch::nn::Embedding consumed(6, kHidden);
  const at::Tensor ids = torch::randint(0, kVocab, {6}, torch::kLong);
  torch::manual_seed(7);
  PromptTuningConfig config;
  config.num_virtual_tokens = 6;
  config.prompt_tuning_init = PromptTuningInit::kSampleVocab;
  const auto adapter = add_prompt_tuning(s.ctx, "default", config);
  const at::Tensor table =
      parameter(*adapter, "prompt_encoder.default.embedding.weight");
  CHECK(torch::equal(table, s.vocabulary().index_select(0, ids)));
}

TEST_CASE(
    "In inference mode prompt tuning skips its init and needs no "
    "tokenizer (the saved table replaces it)",
    "[peft][prompt]") {
  Setup s(/*inference_mode=*/true);
  PromptTuningConfig config;
  config.num_virtual_tokens = 3;
  config.prompt_tuning_init = PromptTuningInit::kText;  // no text, no folder
  const auto adapter = add_prompt_tuning(s.ctx, "default", config);
  CHECK(shapes_of(adapter->named_parameters()) ==
        std::map<std::string, std::vector<int64_t>>{
            {"prompt_encoder.default.embedding.weight", {3, kHidden}}});
}

TEST_CASE(
    "Prompt tuning saves its table as prompt_embeddings and loads it "
    "back into a fresh adapter",
    "[peft][prompt]") {
  Setup a;
  PromptTuningConfig config;
  config.num_virtual_tokens = 4;
  const auto trained = add_prompt_tuning(a.ctx, "default", config);
  randomize(*trained);
  const TensorMap saved = trained->state_dict_to_save("base_model.model.");
  REQUIRE(saved.size() == 1);
  const at::Tensor t = saved.at("prompt_embeddings");
  CHECK(!t.requires_grad());
  CHECK(t.device().is_cpu());
  CHECK(torch::equal(
      t, parameter(*trained, "prompt_encoder.default.embedding.weight")));

  for (const bool inference : {true, false}) {
    DYNAMIC_SECTION("inference_mode " << inference) {
      Setup b(inference);
      PromptTuningConfig fresh;
      fresh.num_virtual_tokens = 4;
      const auto loaded = add_prompt_tuning(b.ctx, "default", fresh);
      const auto used =
          loaded->load_saved(saved, "base_model.model.", "adapter.safetensors");
      CHECK(used == std::vector<std::string>{"prompt_embeddings"});
      trained->set_enabled(true);
      loaded->set_enabled(true);
      CHECK(torch::equal(loaded->virtual_token_embeddings(2),
                         trained->virtual_token_embeddings(2)));
      CHECK(torch::equal(loaded->state_dict_to_save("").at("prompt_embeddings"),
                         t));
    }
  }
}

TEST_CASE("Prompt tuning's virtual tokens take the model's dtype",
          "[peft][prompt]") {
  Setup s;
  s.model->to(torch::kDouble);
  PromptTuningConfig config;
  config.num_virtual_tokens = 2;
  const auto adapter = add_prompt_tuning(s.ctx, "default", config);
  adapter->set_enabled(true);
  // The table stays float32 (PEFT keeps prompt encoders in float32).
  CHECK(parameter(*adapter, "prompt_encoder.default.embedding.weight")
            .scalar_type() == at::kFloat);
  CHECK(adapter->virtual_token_embeddings(1).scalar_type() == at::kDouble);
}

TEST_CASE("Prepended virtual tokens run through the encoder",
          "[peft][prompt]") {
  Setup s;
  s.model->eval();
  PromptTuningConfig config;
  config.num_virtual_tokens = 3;
  const auto adapter = add_prompt_tuning(s.ctx, "default", config);
  adapter->set_enabled(true);
  const at::Tensor ids = torch::randint(5, kVocab, {2, 7}, torch::kLong);
  EncoderInputs in;
  in.inputs_embeds = torch::cat({adapter->virtual_token_embeddings(2),
                                 s.model->embeddings->word_embeddings(ids)},
                                /*dim=*/1);
  in.attention_mask = torch::ones({2, 10}, torch::kLong);
  const auto out = s.model->forward(in);
  CHECK(out.last_hidden_state.sizes() == at::IntArrayRef{2, 10, kHidden});
}

// --- P-tuning ----------------------------------------------------------------

TEST_CASE(
    "P-tuning builds PEFT's MLP head and its virtual tokens are the "
    "head's output",
    "[peft][prompt]") {
  Setup s;
  PromptEncoderConfig config;
  config.num_virtual_tokens = 5;
  config.encoder_hidden_size = 8;
  const auto adapter = add_p_tuning(s.ctx, "default", config);
  CHECK(config.token_dim == kHidden);
  using Shapes = std::map<std::string, std::vector<int64_t>>;
  const Shapes expected{
      {"prompt_encoder.default.embedding.weight", {5, 16}},
      {"prompt_encoder.default.mlp_head.0.weight", {8, 16}},
      {"prompt_encoder.default.mlp_head.0.bias", {8}},
      {"prompt_encoder.default.mlp_head.2.weight", {8, 8}},
      {"prompt_encoder.default.mlp_head.2.bias", {8}},
      {"prompt_encoder.default.mlp_head.4.weight", {16, 8}},
      {"prompt_encoder.default.mlp_head.4.bias", {16}},
  };
  CHECK(shapes_of(adapter->named_parameters()) == expected);
  CHECK(s.holder_parameters() == expected);

  randomize(*adapter);
  const auto p = [&](const std::string& n) {
    return parameter(*adapter, "prompt_encoder.default." + n);
  };
  // Linear, ReLU, Linear, ReLU, Linear; PEFT applies no dropout here.
  const at::Tensor x = p("embedding.weight");
  at::Tensor h = torch::relu(
      torch::linear(x, p("mlp_head.0.weight"), p("mlp_head.0.bias")));
  h = torch::relu(
      torch::linear(h, p("mlp_head.2.weight"), p("mlp_head.2.bias")));
  const at::Tensor y =
      torch::linear(h, p("mlp_head.4.weight"), p("mlp_head.4.bias"));
  adapter->set_enabled(true);
  for (const bool training : {true, false}) {
    s.holder->train(training);
    const at::Tensor v = adapter->virtual_token_embeddings(2);
    REQUIRE(v.sizes() == at::IntArrayRef{2, 5, kHidden});
    CHECK(max_abs_diff(v[0], y) < 1e-6);
    CHECK(max_abs_diff(v[1], y) < 1e-6);
  }
  // Saved: the head's output, not the table.
  const at::Tensor saved =
      adapter->state_dict_to_save("").at("prompt_embeddings");
  CHECK(max_abs_diff(saved, y) < 1e-6);
  // Gradients reach the head.
  adapter->virtual_token_embeddings(2).sum().backward();
  CHECK(p("mlp_head.0.weight").grad().defined());
  CHECK(p("embedding.weight").grad().defined());
}

TEST_CASE("P-tuning's encoder_hidden_size defaults to token_dim",
          "[peft][prompt]") {
  Setup s;
  PromptEncoderConfig config;
  config.num_virtual_tokens = 2;
  const auto adapter = add_p_tuning(s.ctx, "default", config);
  CHECK(config.encoder_hidden_size == kHidden);
  CHECK(
      parameter(*adapter, "prompt_encoder.default.mlp_head.2.weight").sizes() ==
      at::IntArrayRef{kHidden, kHidden});
}

TEST_CASE(
    "A saved P-tuning adapter loads into an inference-mode adapter "
    "that holds only the table and gives the same prompts",
    "[peft][prompt]") {
  Setup a;
  PromptEncoderConfig config;
  config.num_virtual_tokens = 5;
  config.encoder_hidden_size = 8;
  const auto trained = add_p_tuning(a.ctx, "default", config);
  randomize(*trained);
  trained->set_enabled(true);
  const TensorMap saved = trained->state_dict_to_save("");

  Setup b(/*inference_mode=*/true);
  PromptEncoderConfig fresh = config;
  const auto loaded = add_p_tuning(b.ctx, "default", fresh);
  CHECK(shapes_of(loaded->named_parameters()) ==
        std::map<std::string, std::vector<int64_t>>{
            {"prompt_encoder.default.embedding.weight", {5, kHidden}}});
  loaded->load_saved(saved, "", "adapter_model.safetensors");
  loaded->set_enabled(true);
  CHECK(max_abs_diff(loaded->virtual_token_embeddings(3),
                     trained->virtual_token_embeddings(3)) < 1e-6);
  // Saved again unchanged (PEFT saves the table in inference mode).
  CHECK(torch::equal(loaded->state_dict_to_save("").at("prompt_embeddings"),
                     saved.at("prompt_embeddings")));
}

TEST_CASE("Saved prompts do not load into a training P-tuning encoder",
          "[peft][prompt]") {
  Setup a;
  PromptEncoderConfig config;
  config.num_virtual_tokens = 5;
  const auto trained = add_p_tuning(a.ctx, "default", config);
  const TensorMap saved = trained->state_dict_to_save("");
  Setup b;
  PromptEncoderConfig fresh;
  fresh.num_virtual_tokens = 5;
  const auto target = add_p_tuning(b.ctx, "default", fresh);
  REQUIRE_THROWS_AS(target->load_saved(saved, "", "dir/adapter.safetensors"),
                    std::invalid_argument);
  REQUIRE_THROWS_WITH(
      target->load_saved(saved, "", "dir/adapter.safetensors"),
      Contains("[load_adapter] expected a table to load saved "
               "prompt_embeddings into") &&
          Contains("P-tuning adapter \"default\" with its training encoder") &&
          Contains("load the adapter for inference"));
}

// --- prefix tuning -----------------------------------------------------------

TEST_CASE("Prefix tuning lays keys and values out as PEFT's get_prompt",
          "[peft][prompt]") {
  Setup s;
  PrefixTuningConfig config;
  config.num_virtual_tokens = 3;
  const auto adapter = add_prefix_tuning(s.ctx, "default", config);
  CHECK(config.num_layers == kLayers);
  CHECK(config.encoder_hidden_size == kHidden);  // filled though unused
  const int64_t flat = kLayers * 2 * kHidden;
  CHECK(shapes_of(adapter->named_parameters()) ==
        std::map<std::string, std::vector<int64_t>>{
            {"prompt_encoder.default.embedding.weight", {3, flat}}});
  const at::Tensor table =
      parameter(*adapter, "prompt_encoder.default.embedding.weight");
  {
    torch::NoGradGuard no_grad;
    table.copy_(torch::arange(3 * flat, torch::kFloat).view({3, flat}));
  }
  CHECK(adapter->key_value_prefix(2).empty());  // disabled
  adapter->set_enabled(true);
  CHECK_FALSE(adapter->virtual_token_embeddings(2).defined());
  const auto prefix = adapter->key_value_prefix(2);
  REQUIRE(prefix.size() == static_cast<size_t>(kLayers));
  const int64_t head_dim = kHidden / kHeads;
  for (const auto& kv : prefix) {
    REQUIRE(kv.key.sizes() == at::IntArrayRef{2, kHeads, 3, head_dim});
    REQUIRE(kv.value.sizes() == at::IntArrayRef{2, kHeads, 3, head_dim});
  }
  // Row p of the table is [layer 0 key | layer 0 value | layer 1 key | ...],
  // each hidden-sized block split into heads. Checked by hand with PEFT:
  // layer 1, batch 0, head 1, token 2 is [164, 165, 166, 167] for the key
  // and [180, ..., 183] for the value.
  CHECK(torch::equal(prefix[1].key[0][1][2],
                     torch::tensor({164.f, 165.f, 166.f, 167.f})));
  CHECK(torch::equal(prefix[1].value[0][1][2],
                     torch::tensor({180.f, 181.f, 182.f, 183.f})));
  for (int64_t l = 0; l < kLayers; ++l) {
    for (int64_t h = 0; h < kHeads; ++h) {
      for (int64_t p = 0; p < 3; ++p) {
        const auto block = [&](int64_t which) {
          const int64_t start = (2 * l + which) * kHidden + h * head_dim;
          return table[p].slice(0, start, start + head_dim);
        };
        for (int64_t b = 0; b < 2; ++b) {
          CHECK(torch::equal(prefix[l].key[b][h][p], block(0)));
          CHECK(torch::equal(prefix[l].value[b][h][p], block(1)));
        }
      }
    }
  }
  // Saved: the flat table.
  CHECK(torch::equal(adapter->state_dict_to_save("").at("prompt_embeddings"),
                     table));
}

TEST_CASE("A prefix runs through the encoder's key/value prefix hook",
          "[peft][prompt]") {
  Setup s;
  s.model->eval();
  PrefixTuningConfig config;
  config.num_virtual_tokens = 4;
  const auto adapter = add_prefix_tuning(s.ctx, "default", config);
  adapter->set_enabled(true);
  EncoderInputs in;
  in.input_ids = torch::randint(5, kVocab, {2, 6}, torch::kLong);
  in.attention_mask = torch::ones({2, 6}, torch::kLong);
  const auto base = s.model->forward(in);
  in.prefix = adapter->key_value_prefix(2);
  const auto out = s.model->forward(in);
  REQUIRE(out.last_hidden_state.sizes() == at::IntArrayRef{2, 6, kHidden});
  CHECK_FALSE(torch::allclose(out.last_hidden_state, base.last_hidden_state));
  // Gradients reach the table through the attention.
  out.last_hidden_state.sum().backward();
  CHECK(parameter(*adapter, "prompt_encoder.default.embedding.weight")
            .grad()
            .abs()
            .sum()
            .item<double>() > 0);
}

TEST_CASE(
    "Prefix projection runs PEFT's transform while training, saves its "
    "output and loads for inference as the flat table",
    "[peft][prompt]") {
  Setup a;
  PrefixTuningConfig config;
  config.num_virtual_tokens = 3;
  config.prefix_projection = true;
  config.encoder_hidden_size = 8;
  const auto trained = add_prefix_tuning(a.ctx, "default", config);
  const int64_t flat = kLayers * 2 * kHidden;
  CHECK(shapes_of(trained->named_parameters()) ==
        std::map<std::string, std::vector<int64_t>>{
            {"prompt_encoder.default.embedding.weight", {3, kHidden}},
            {"prompt_encoder.default.transform.0.weight", {8, kHidden}},
            {"prompt_encoder.default.transform.0.bias", {8}},
            {"prompt_encoder.default.transform.2.weight", {flat, 8}},
            {"prompt_encoder.default.transform.2.bias", {flat}}});
  randomize(*trained);
  const auto p = [&](const std::string& n) {
    return parameter(*trained, "prompt_encoder.default." + n);
  };
  // Linear, Tanh, Linear
  const at::Tensor expected = torch::linear(
      torch::tanh(torch::linear(p("embedding.weight"), p("transform.0.weight"),
                                p("transform.0.bias"))),
      p("transform.2.weight"), p("transform.2.bias"));  // [P, L * 2 * D]
  const TensorMap saved = trained->state_dict_to_save("");
  CHECK(max_abs_diff(saved.at("prompt_embeddings"), expected) < 1e-6);

  Setup b(/*inference_mode=*/true);
  PrefixTuningConfig fresh = config;
  const auto loaded = add_prefix_tuning(b.ctx, "default", fresh);
  CHECK(shapes_of(loaded->named_parameters()) ==
        std::map<std::string, std::vector<int64_t>>{
            {"prompt_encoder.default.embedding.weight", {3, flat}}});
  loaded->load_saved(saved, "", "adapter_model.safetensors");
  trained->set_enabled(true);
  loaded->set_enabled(true);
  const auto want = trained->key_value_prefix(2);
  const auto got = loaded->key_value_prefix(2);
  REQUIRE(got.size() == want.size());
  for (size_t l = 0; l < got.size(); ++l) {
    CHECK(max_abs_diff(got[l].key, want[l].key) < 1e-6);
    CHECK(max_abs_diff(got[l].value, want[l].value) < 1e-6);
  }

  // Not into the training form (PEFT cannot invert the projection either).
  Setup c;
  PrefixTuningConfig again = config;
  const auto training = add_prefix_tuning(c.ctx, "default", again);
  REQUIRE_THROWS_WITH(training->load_saved(saved, "", "x.safetensors"),
                      Contains("prefix tuning adapter \"default\" with its "
                               "training encoder"));
}
