// load_gguf_checkpoint against transformers' from_pretrained(dir,
// gguf_file=name, dtype=float32) on the real SmolLM2 file
// (tests/fixtures/make_gguf.py): the same config, the same names and every
// tensor bit for bit (compared by SHA-256 of the float32 bytes), and files
// it cannot map refused by name.

#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "models/checkpoint/gguf_checkpoint.h"
#include "models/checkpoint/safetensors.h"
#include "models/gguf/gguf_file.h"
#include "tests/models/checkpoint_test_helpers.h"
#include "tests/test_paths.h"

using namespace peftcpp::models;
namespace fs = std::filesystem;
using json = nlohmann::json;
using Catch::Matchers::Contains;
using peftcpp::testing::runtime_error_of;

namespace peftcpp::testing {
std::string sha256_hex(const void* data, size_t size);
}

namespace {

fs::path gguf_fixture(const std::string& name) {
  return peftcpp::testing::fixture_dir() / "gguf" / name;
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  REQUIRE(in.good());
  return json::parse(in);
}

fs::path smollm2_path() {
  std::ifstream in(gguf_fixture("smollm2/path.txt"));
  std::string line;
  std::getline(in, line);
  REQUIRE(!line.empty());
  return line;
}

std::string sha256_of(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return peftcpp::testing::sha256_hex(c.data_ptr(), c.nbytes());
}

}  // namespace

TEST_CASE(
    "SmolLM2: the state dict equals transformers' gguf_file= loading "
    "bit for bit",
    "[gguf][checkpoint][slow]") {
  const json ref = read_json(gguf_fixture("smollm2/state_dict.json"));
  const auto t0 = std::chrono::steady_clock::now();
  const GgufCheckpoint ckpt = load_gguf_checkpoint(smollm2_path());
  WARN("SmolLM2 load_gguf_checkpoint (open + dequantize + HF layout): "
       << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
              .count()
       << " s");
  // transformers ties lm_head to the embedding (one storage); a tied HF
  // checkpoint has no lm_head.weight, and neither do we.
  REQUIRE(ref["tied_lm_head"].get<bool>());
  CHECK(ckpt.config["tie_word_embeddings"] == true);
  CHECK(ckpt.state_dict.count("lm_head.weight") == 0);
  const json& tensors = ref["tensors"];
  CHECK(ckpt.state_dict.size() == tensors.size() - 1);
  for (const auto& [name, entry] : tensors.items()) {
    if (name == "lm_head.weight") {
      continue;
    }
    INFO(name);
    REQUIRE(ckpt.state_dict.count(name) == 1);
    const at::Tensor& t = ckpt.state_dict.at(name);
    CHECK(t.scalar_type() == at::kFloat);
    CHECK(t.sizes().vec() == entry["shape"].get<std::vector<int64_t>>());
    CHECK(sha256_of(t) == entry["sha256"].get<std::string>());
  }
  CHECK(sha256_of(ckpt.state_dict.at("model.embed_tokens.weight")) ==
        tensors["lm_head.weight"]["sha256"].get<std::string>());
}

TEST_CASE(
    "SmolLM2: the config equals the one transformers builds from the "
    "metadata",
    "[gguf][checkpoint]") {
  const json ref = read_json(gguf_fixture("smollm2/config.json"));
  const auto file = peftcpp::gguf::GgufFile::open(smollm2_path());
  json config = gguf_config(file);
  CHECK(config["architectures"] == json::array({"LlamaForCausalLM"}));
  config.erase("architectures");
  CHECK(config == ref);
  // Spot checks of what the decoder needs, from the real model card.
  CHECK(config["num_hidden_layers"] == 30);
  CHECK(config["num_key_value_heads"] == 3);
  CHECK(config["rms_norm_eps"].get<double>() == double{1e-5f});
}

TEST_CASE("load_gguf_checkpoint converts to the requested dtype",
          "[gguf][checkpoint][slow]") {
  const GgufCheckpoint f32 = load_gguf_checkpoint(smollm2_path());
  const GgufCheckpoint bf16 =
      load_gguf_checkpoint(smollm2_path(), at::kBFloat16);
  REQUIRE(bf16.state_dict.size() == f32.state_dict.size());
  for (const auto& [name, t] : bf16.state_dict) {
    INFO(name);
    CHECK(t.scalar_type() == at::kBFloat16);
    CHECK(at::equal(t, f32.state_dict.at(name).to(at::kBFloat16)));
  }
}

TEST_CASE(
    "tiny LLaMA, Qwen2 and GPT-2 models converted like llama.cpp "
    "load back to the original HF weights",
    "[gguf][checkpoint]") {
  // q/k rows permuted (LLaMA, Mistral: a "llama" file named "mistral"),
  // q/k/v biases and a tied lm_head (Qwen2),
  // Conv1D weights transposed and position embeddings (GPT-2).
  for (const auto& [arch, hf_class] :
       {std::pair<std::string, std::string>{"llama", "LlamaForCausalLM"},
        {"mistral", "MistralForCausalLM"},
        {"qwen2", "Qwen2ForCausalLM"},
        {"gpt2", "GPT2LMHeadModel"}}) {
    INFO(arch);
    const fs::path dir = gguf_fixture("tiny/" + arch);
    const GgufCheckpoint ckpt = load_gguf_checkpoint(dir / "model.gguf");
    const auto ref = SafetensorsFile::open(dir / "state_dict.safetensors");
    std::vector<std::string> ours;
    for (const auto& kv : ckpt.state_dict) {
      ours.push_back(kv.first);
    }
    std::vector<std::string> expected = ref->keys();
    std::sort(expected.begin(), expected.end());
    CHECK(ours == expected);
    for (const std::string& name : expected) {
      INFO(name);
      REQUIRE(ckpt.state_dict.count(name) == 1);
      CHECK(at::equal(ckpt.state_dict.at(name), ref->tensor(name)));
    }
    json config = ckpt.config;
    CHECK(config["architectures"] == json::array({hf_class}));
    config.erase("architectures");
    CHECK(config == read_json(dir / "config.json"));
  }
}

TEST_CASE("GGUF files the loader cannot map are refused by name",
          "[gguf][checkpoint][errors]") {
  SECTION("an unsupported architecture") {
    const std::string msg = runtime_error_of(
        [] { load_gguf_checkpoint(gguf_fixture("errors/mamba.gguf")); });
    CHECK_THAT(msg, Contains("mamba.gguf'] expected general.architecture one "
                             "of gpt2, llama, qwen2, got 'mamba'"));
  }
  SECTION("a tensor type that cannot be dequantized") {
    const std::string msg = runtime_error_of(
        [] { load_gguf_checkpoint(gguf_fixture("errors/q6_k.gguf")); });
    CHECK_THAT(msg, Contains("q6_k.gguf' tensor 'blk.0.attn_q.weight'] "
                             "expected one of F32, F16, BF16, Q8_0, Q4_0, "
                             "Q4_1, got Q6_K (hint: "));
  }
  SECTION("a tensor the architecture's table does not know") {
    const std::string msg = runtime_error_of([] {
      load_gguf_checkpoint(gguf_fixture("errors/unknown_tensor.gguf"));
    });
    CHECK_THAT(msg, Contains("expected tensor names of the 'llama' "
                             "architecture (token_embd, blk.N.attn_q, ...), "
                             "got 'blk.0.attn_qkv.weight'"));
  }
}
