// Parity of the decoder-only models with transformers on tiny random
// GPT2LMHeadModel, LlamaForCausalLM (GQA, llama3 RoPE), Qwen2ForCausalLM
// (q/k/v biases, tied embeddings), MistralForCausalLM (sliding window
// shorter than the input) and two ...ForSequenceClassification models:
// logits of right- and left-padded batches (fp32, |delta| <= 1e-5 on real
// tokens), 32 greedy tokens equal to generate() with and without the cache.
// References: tests/fixtures/make_decoders.py.

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include "models/checkpoint/state_dict.h"
#include "models/decoder/generation.h"
#include "models/decoder/load_decoder.h"
#include "tests/test_paths.h"
#include "tests/test_tensors.h"

using namespace peftcpp::models;
namespace fs = std::filesystem;
using peftcpp::testing::max_abs_diff;

namespace {

fs::path model_dir(const std::string& name) {
  return peftcpp::testing::fixture_dir() / "decoders" / "models" / name;
}

StateDict refs_of(const std::string& name) {
  return load_checkpoint(peftcpp::testing::fixture_dir() / "decoders" / "refs" /
                         (name + ".safetensors"));
}

// max |delta| over the positions the mask marks as tokens.
double masked_diff(const at::Tensor& ours, const at::Tensor& theirs,
                   const at::Tensor& mask) {
  REQUIRE(ours.sizes() == theirs.sizes());
  const at::Tensor keep = mask.to(at::kBool).unsqueeze(-1).expand_as(ours);
  return (ours.to(at::kDouble) - theirs.to(at::kDouble))
      .abs()
      .masked_select(keep)
      .max()
      .item<double>();
}

const std::vector<std::string> kCausalModels = {"gpt2", "llama", "qwen2",
                                                "mistral"};

}  // namespace

TEST_CASE("decoder logits equal transformers' on padded batches (fp32)",
          "[decoder]") {
  torch::NoGradGuard no_grad;
  for (const std::string& name : kCausalModels) {
    CAPTURE(name);
    LoadDecoderOptions options;
    options.strict = true;
    LoadedDecoder loaded = load_decoder(model_dir(name), options);
    REQUIRE(!loaded.has_classifier());
    CHECK(loaded.missing_keys.empty());
    CHECK(loaded.unexpected_keys.empty());
    const StateDict refs = refs_of(name);
    for (const std::string side : {"right", "left"}) {
      CAPTURE(side);
      DecoderInputs in;
      in.input_ids = refs.at(side + "_input_ids");
      in.attention_mask = refs.at(side + "_attention_mask");
      const at::Tensor logits = loaded.causal_lm->forward(in);
      CHECK(masked_diff(logits, refs.at(side + "_logits"), in.attention_mask) <=
            1e-5);
    }
  }
}

TEST_CASE("decoder sequence classification equals transformers'", "[decoder]") {
  torch::NoGradGuard no_grad;
  for (const std::string name : {"gpt2_cls", "llama_cls"}) {
    CAPTURE(name);
    LoadedDecoder loaded = load_decoder(model_dir(name));
    REQUIRE(loaded.has_classifier());
    CHECK(loaded.missing_keys.empty());
    const StateDict refs = refs_of(name);
    for (const std::string side : {"right", "left"}) {
      CAPTURE(side);
      DecoderInputs in;
      in.input_ids = refs.at(side + "_input_ids");
      in.attention_mask = refs.at(side + "_attention_mask");
      const at::Tensor logits = loaded.classifier->forward(in);
      CHECK(max_abs_diff(logits, refs.at(side + "_logits")) <= 1e-5);
    }
  }
}

TEST_CASE(
    "32 greedy tokens equal transformers' generate(), with and without "
    "the cache",
    "[decoder][generation]") {
  for (const std::string& name : kCausalModels) {
    CAPTURE(name);
    LoadedDecoder loaded = load_decoder(model_dir(name));
    CausalLMImpl& lm = *loaded.causal_lm;
    const StateDict refs = refs_of(name);
    GenerationOptions options;
    options.max_new_tokens = 32;
    options.min_new_tokens = 32;
    options.stop_token_ids = loaded.config.eos_token_ids;
    options.pad_token_id = 0;
    for (const bool use_cache : {true, false}) {
      CAPTURE(use_cache);
      options.use_cache = use_cache;
      const GenerationOutput batch =
          generate(lm, refs.at("generate_input_ids"),
                   refs.at("generate_attention_mask"), options);
      CHECK(batch.sequences.equal(refs.at("generate_sequences")));
      const GenerationOutput single =
          generate(lm, refs.at("single_input_ids"), at::Tensor(), options);
      CHECK(single.sequences.equal(refs.at("single_sequences")));
      CHECK(single.num_generated == std::vector<int64_t>{32});
    }
  }
}

TEST_CASE("a forward in pieces through the cache equals one forward",
          "[decoder]") {
  torch::NoGradGuard no_grad;
  LoadedDecoder loaded = load_decoder(model_dir("mistral"));
  CausalLMImpl& lm = *loaded.causal_lm;
  const at::Tensor ids = torch::randint(3, 96, {2, 11});
  DecoderInputs whole;
  whole.input_ids = ids;
  const at::Tensor expected = lm.forward(whole);

  KeyValueCache cache(loaded.config.num_hidden_layers);
  std::vector<at::Tensor> pieces;
  for (auto [start, end] :
       std::vector<std::pair<int64_t, int64_t>>{{0, 4}, {4, 5}, {5, 11}}) {
    DecoderInputs part;
    part.input_ids = ids.slice(1, start, end);
    part.cache = &cache;
    pieces.push_back(lm.forward(part));
    CHECK(cache.length() == end);
  }
  CHECK(max_abs_diff(torch::cat(pieces, 1), expected) <= 1e-5);
}

TEST_CASE("bad decoder inputs are refused with a message", "[decoder]") {
  torch::NoGradGuard no_grad;
  LoadedDecoder loaded = load_decoder(model_dir("gpt2"));
  CausalLMImpl& lm = *loaded.causal_lm;
  DecoderInputs none;
  CHECK_THROWS_WITH(
      lm.forward(none),
      Catch::Contains("exactly one of input_ids and inputs_embeds"));
  DecoderInputs bad_mask;
  bad_mask.input_ids = torch::randint(3, 96, {2, 5});
  bad_mask.attention_mask = torch::ones({2, 4}, torch::kLong);
  CHECK_THROWS_WITH(lm.forward(bad_mask), Catch::Contains("attention_mask"));
  DecoderInputs too_long;
  too_long.input_ids = torch::randint(3, 96, {1, 129});
  CHECK_THROWS_WITH(lm.forward(too_long), Catch::Contains("n_positions = 128"));
  const fs::path encoder = peftcpp::testing::minilm_dir();
  CHECK_THROWS_WITH(load_decoder(encoder),
                    Catch::Contains("a decoder model_type (gpt2, llama"));
}

TEST_CASE("decoders run on CUDA in fp32, bf16 and fp16 and match the CPU",
          "[decoder][cuda]") {
  if (!torch::cuda::is_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  torch::NoGradGuard no_grad;
  for (const std::string& name : kCausalModels) {
    CAPTURE(name);
    const StateDict refs = refs_of(name);
    // fp32 on the GPU: transformers' logits within 1e-4 (TF32 is off by
    // default for matmuls in LibTorch; kernels differ from the CPU's).
    LoadDecoderOptions options;
    options.device = torch::kCUDA;
    LoadedDecoder gpu = load_decoder(model_dir(name), options);
    for (const std::string side : {"right", "left"}) {
      CAPTURE(side);
      DecoderInputs in;
      in.input_ids = refs.at(side + "_input_ids").to(torch::kCUDA);
      in.attention_mask = refs.at(side + "_attention_mask").to(torch::kCUDA);
      const at::Tensor logits = gpu.causal_lm->forward(in).cpu();
      CHECK(masked_diff(logits, refs.at(side + "_logits"),
                        refs.at(side + "_attention_mask")) <= 1e-4);
    }
    GenerationOptions g;
    g.max_new_tokens = 32;
    g.min_new_tokens = 32;
    g.stop_token_ids = gpu.config.eos_token_ids;
    g.pad_token_id = 0;
    const GenerationOutput out =
        generate(*gpu.causal_lm, refs.at("generate_input_ids").cuda(),
                 refs.at("generate_attention_mask").cuda(), g);
    CHECK(out.sequences.cpu().equal(refs.at("generate_sequences")));

    // Half precision: finite logits close to fp32's (relative to their
    // spread), and cached generation equal to uncached in the same dtype.
    for (const auto dtype : {torch::kBFloat16, torch::kHalf}) {
      CAPTURE(dtype);
      options.dtype = dtype;
      LoadedDecoder half = load_decoder(model_dir(name), options);
      DecoderInputs in;
      in.input_ids = refs.at("left_input_ids").cuda();
      in.attention_mask = refs.at("left_attention_mask").cuda();
      const at::Tensor logits =
          half.causal_lm->forward(in).cpu().to(at::kFloat);
      CHECK(logits.isfinite().all().item<bool>());
      const at::Tensor expected = refs.at("left_logits");
      const double scale = expected.abs().max().item<double>();
      CHECK(masked_diff(logits, expected, refs.at("left_attention_mask")) <=
            0.05 * scale);
      GenerationOptions gh = g;
      gh.max_new_tokens = gh.min_new_tokens = 12;
      const at::Tensor cached =
          generate(*half.causal_lm, refs.at("generate_input_ids").cuda(),
                   refs.at("generate_attention_mask").cuda(), gh)
              .sequences;
      gh.use_cache = false;
      const at::Tensor uncached =
          generate(*half.causal_lm, refs.at("generate_input_ids").cuda(),
                   refs.at("generate_attention_mask").cuda(), gh)
              .sequences;
      // Cached and uncached attention sum in another order; in half
      // precision that may flip a near-tie, so count agreement.
      const double agree =
          cached.eq(uncached).to(at::kFloat).mean().item<double>();
      CHECK(agree >= 0.9);
    }
  }
}

TEST_CASE("sampling warpers equal transformers' temperature, top-k and top-p",
          "[decoder][generation]") {
  const StateDict refs = refs_of("warpers");
  const struct {
    const char* name;
    double temperature;
    int64_t top_k;
    double top_p;
  } cases[] = {{"t07", 0.7, 0, 1.0},
               {"k10", 1.0, 10, 1.0},
               {"p09", 1.0, 0, 0.9},
               {"t07_k20_p08", 0.7, 20, 0.8}};
  for (const auto& c : cases) {
    CAPTURE(c.name);
    GenerationOptions o;
    o.temperature = c.temperature;
    o.top_k = c.top_k;
    o.top_p = c.top_p;
    const at::Tensor ours = warp_logits(refs.at("logits"), o);
    const at::Tensor& theirs = refs.at(c.name);
    // The same entries filtered out, the same values elsewhere.
    CHECK(ours.isinf().equal(theirs.isinf()));
    const at::Tensor kept = theirs.isfinite();
    CHECK(max_abs_diff(ours.masked_select(kept), theirs.masked_select(kept)) <=
          1e-6);
  }
}

TEST_CASE("sampling is reproducible for a seed and differs across seeds",
          "[decoder][generation]") {
  LoadedDecoder loaded = load_decoder(model_dir("llama"));
  const StateDict refs = refs_of("llama");
  GenerationOptions o;
  o.do_sample = true;
  o.temperature = 1.5;
  o.top_p = 0.95;
  o.max_new_tokens = 24;
  o.pad_token_id = 0;
  const auto run = [&](uint64_t seed) {
    o.seed = seed;
    return generate(*loaded.causal_lm, refs.at("generate_input_ids"),
                    refs.at("generate_attention_mask"), o)
        .sequences;
  };
  const at::Tensor a = run(1);
  CHECK(a.equal(run(1)));
  CHECK(!a.equal(run(2)));
  // Sampled tokens are valid ids.
  CHECK(a.min().item<int64_t>() >= 0);
  CHECK(a.max().item<int64_t>() < loaded.config.vocab_size);
}
