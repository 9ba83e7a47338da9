// Prompt-learning adapters are removed cleanly and refuse what a model
// cannot take, with messages that name the value (peft/prompt_learning.h).

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
