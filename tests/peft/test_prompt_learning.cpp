// Prompt tuning, P-tuning and prefix tuning (peft/prompt_learning.h) on a
// tiny random encoder: PEFT's parameter names and shapes, the three prompt
// tuning initialisations, get_prompt's layouts, the saved form and its
// round trip, and the error messages. The bit-for-bit comparison with
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
#include "tests/test_paths.h"
#include "tests/test_tensors.h"

using namespace peftcpp::peft;
using Catch::Contains;
using peftcpp::models::EncoderConfig;
using peftcpp::models::EncoderInputs;
using peftcpp::models::EncoderModel;
using peftcpp::testing::max_abs_diff;
using peftcpp::testing::ScratchDir;

namespace {

constexpr int64_t kVocab = 40;
constexpr int64_t kHidden = 16;
constexpr int64_t kLayers = 2;
constexpr int64_t kHeads = 4;

EncoderConfig tiny_config() {
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
    ctx.info = {"bert", kHidden, kLayers, kHeads, kVocab};
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

std::map<std::string, std::vector<int64_t>> shapes_of(const NamedTensors& t) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& [name, tensor] : t)
    out[name] = tensor.sizes().vec();
  return out;
}

at::Tensor parameter(const Adapter& adapter, const std::string& name) {
  for (const auto& [n, t] : adapter.named_parameters()) {
    if (n == name)
      return t;
  }
  FAIL("no parameter " << name);
  return {};
}

// Fills every parameter of the adapter with fresh random values, so a table
// copied wrongly or an encoder skipped shows.
void randomize(const Adapter& adapter) {
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : adapter.named_parameters())
    t.copy_(torch::randn_like(t) * 0.5);
}

// A BERT tokenizer folder (vocab.txt only): [PAD] [UNK] [CLS] [SEP] [MASK]
// dull ! good, so "Dull!" -> [CLS] dull ! [SEP] = 2 5 6 3.
void write_vocab(const ScratchDir& dir) {
  std::ofstream out(dir / "vocab.txt");
  for (const char* t :
       {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "dull", "!", "good"})
    out << t << "\n";
}

at::Tensor rows(const at::Tensor& table, std::vector<int64_t> ids) {
  return table.index_select(0, torch::tensor(ids, torch::kLong));
}

}  // namespace

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

// --- removal -----------------------------------------------------------------

TEST_CASE(
    "Removing a prompt adapter takes its module out of the model and "
    "frees the name",
    "[peft][prompt]") {
  Setup s;
  PromptEncoderConfig config;
  config.num_virtual_tokens = 2;
  auto adapter = add_p_tuning(s.ctx, "a", config);
  PromptTuningConfig other;
  other.num_virtual_tokens = 3;
  const auto kept = add_prompt_tuning(s.ctx, "b", other);
  CHECK(s.holder_parameters().size() == 8);
  adapter->remove();
  CHECK_FALSE(s.dict->contains("a"));
  CHECK(s.holder_parameters() ==
        std::map<std::string, std::vector<int64_t>>{
            {"prompt_encoder.b.embedding.weight", {3, kHidden}}});
  PromptEncoderConfig again;
  again.num_virtual_tokens = 2;
  adapter = add_p_tuning(s.ctx, "a", again);
  CHECK(s.holder_parameters().size() == 8);
}

// --- errors ------------------------------------------------------------------

TEST_CASE("Options a model cannot take are refused with the values",
          "[peft][prompt]") {
  Setup s;
  SECTION("no virtual tokens") {
    PromptTuningConfig c;
    REQUIRE_THROWS_AS(add_prompt_tuning(s.ctx, "default", c),
                      std::invalid_argument);
    REQUIRE_THROWS_WITH(add_prompt_tuning(s.ctx, "default", c),
                        "[add_prompt_tuning] expected num_virtual_tokens >= 1, "
                        "got 0");
  }
  SECTION("a token_dim that is not the hidden size") {
    PromptEncoderConfig c;
    c.num_virtual_tokens = 2;
    c.token_dim = 24;
    REQUIRE_THROWS_WITH(
        add_p_tuning(s.ctx, "default", c),
        Contains("[add_p_tuning] expected token_dim equal to the model's "
                 "hidden size 16, got 24"));
  }
  SECTION("two transformer submodules") {
    PromptTuningConfig c;
    c.num_virtual_tokens = 2;
    c.num_transformer_submodules = 2;
    REQUIRE_THROWS_WITH(add_prompt_tuning(s.ctx, "default", c),
                        Contains("num_transformer_submodules 1"));
  }
  SECTION("the LSTM encoder") {
    PromptEncoderConfig c;
    c.num_virtual_tokens = 2;
    c.encoder_reparameterization_type = "LSTM";
    REQUIRE_THROWS_AS(add_p_tuning(s.ctx, "default", c), std::invalid_argument);
    REQUIRE_THROWS_WITH(
        add_p_tuning(s.ctx, "default", c),
        Contains("[add_p_tuning] expected encoder_reparameterization_type "
                 "\"MLP\", got \"LSTM\"") &&
            Contains("not supported yet"));
  }
  SECTION("an unknown encoder") {
    PromptEncoderConfig c;
    c.num_virtual_tokens = 2;
    c.encoder_reparameterization_type = "GRU";
    REQUIRE_THROWS_WITH(add_p_tuning(s.ctx, "default", c),
                        Contains("got \"GRU\""));
  }
  SECTION("heads that do not divide token_dim (prefix)") {
    PrefixTuningConfig c;
    c.num_virtual_tokens = 2;
    c.num_attention_heads = 3;
    REQUIRE_THROWS_WITH(
        add_prefix_tuning(s.ctx, "default", c),
        "[add_prefix_tuning] expected num_attention_heads dividing token_dim "
        "16, got 3");
  }
  SECTION("heads other than the model's (prefix)") {
    PrefixTuningConfig c;
    c.num_virtual_tokens = 2;
    c.num_attention_heads = 8;
    REQUIRE_THROWS_WITH(add_prefix_tuning(s.ctx, "default", c),
                        Contains("expected num_attention_heads equal to the "
                                 "model's 4, got 8"));
  }
  SECTION("layers other than the model's (prefix)") {
    PrefixTuningConfig c;
    c.num_virtual_tokens = 2;
    c.num_layers = 3;
    REQUIRE_THROWS_WITH(add_prefix_tuning(s.ctx, "default", c),
                        Contains("expected num_layers equal to the model's 2 "
                                 "layers"));
  }
  SECTION("a name in use") {
    PromptTuningConfig c;
    c.num_virtual_tokens = 2;
    const auto first = add_prompt_tuning(s.ctx, "default", c);
    REQUIRE_THROWS_WITH(add_prompt_tuning(s.ctx, "default", c),
                        Contains("\"default\" (already in use)"));
  }
  // Nothing was registered by a refused adapter.
  CHECK(s.holder_parameters().size() <= 1);
}

TEST_CASE("TEXT init without its text or tokenizer is refused",
          "[peft][prompt]") {
  Setup s;
  PromptTuningConfig c;
  c.num_virtual_tokens = 2;
  c.prompt_tuning_init = PromptTuningInit::kText;
  SECTION("no text") {
    c.tokenizer_name_or_path = "/tmp";
    REQUIRE_THROWS_AS(add_prompt_tuning(s.ctx, "default", c),
                      std::invalid_argument);
    REQUIRE_THROWS_WITH(add_prompt_tuning(s.ctx, "default", c),
                        "[add_prompt_tuning] expected prompt_tuning_init_text "
                        "for prompt_tuning_init TEXT, got none");
  }
  SECTION("no tokenizer") {
    c.prompt_tuning_init_text = "Dull!";
    REQUIRE_THROWS_AS(add_prompt_tuning(s.ctx, "default", c),
                      std::invalid_argument);
    REQUIRE_THROWS_WITH(add_prompt_tuning(s.ctx, "default", c),
                        Contains("expected tokenizer_name_or_path"));
  }
  SECTION("a tokenizer folder that does not exist") {
    c.prompt_tuning_init_text = "Dull!";
    c.tokenizer_name_or_path = "bert-base-uncased";
    REQUIRE_THROWS_WITH(add_prompt_tuning(s.ctx, "default", c),
                        Contains("\"bert-base-uncased\" (no such folder)") &&
                            Contains("Hub names are not downloaded"));
  }
  SECTION("a tokenizer whose ids the model does not have") {
    const ScratchDir dir("prompt-big-vocab");
    {
      std::ofstream out(dir / "vocab.txt");
      for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"})
        out << t << "\n";
      for (int i = 0; i < 60; ++i)
        out << "w" << i << "\n";
    }
    c.prompt_tuning_init_text = "w50";  // id 55 >= 40
    c.tokenizer_name_or_path = dir.path().string();
    REQUIRE_THROWS_WITH(add_prompt_tuning(s.ctx, "default", c),
                        Contains("got id 55 (\"w50\")") &&
                            Contains("does not belong to this model"));
  }
  CHECK(s.holder_parameters().empty());
}

TEST_CASE("Loading refuses a missing or misshapen prompt_embeddings",
          "[peft][prompt]") {
  Setup s(/*inference_mode=*/true);
  PrefixTuningConfig c;
  c.num_virtual_tokens = 3;
  const auto adapter = add_prefix_tuning(s.ctx, "default", c);
  const at::Tensor before =
      parameter(*adapter, "prompt_encoder.default.embedding.weight").clone();
  SECTION("missing") {
    REQUIRE_THROWS_AS(adapter->load_saved({}, "", "out/adapter.safetensors"),
                      std::runtime_error);
    REQUIRE_THROWS_WITH(adapter->load_saved({}, "", "out/adapter.safetensors"),
                        "[load_adapter] expected tensor \"prompt_embeddings\" "
                        "in out/adapter.safetensors, got none");
  }
  SECTION("another model's shape") {
    const TensorMap saved{{"prompt_embeddings", torch::zeros({3, 96})}};
    REQUIRE_THROWS_AS(adapter->load_saved(saved, "", "a.safetensors"),
                      std::runtime_error);
    REQUIRE_THROWS_WITH(
        adapter->load_saved(saved, "", "a.safetensors"),
        Contains("expected tensor \"prompt_embeddings\" of shape [3, 64]") &&
            Contains("got [3, 96] in a.safetensors") &&
            Contains("(hint: maybe wrong base model?"));
  }
  SECTION("integer data") {
    const TensorMap saved{
        {"prompt_embeddings", torch::zeros({3, 64}, torch::kLong)}};
    REQUIRE_THROWS_WITH(adapter->load_saved(saved, "", "a.safetensors"),
                        Contains("floating-point tensor"));
  }
  CHECK(torch::equal(
      parameter(*adapter, "prompt_encoder.default.embedding.weight"), before));
}
