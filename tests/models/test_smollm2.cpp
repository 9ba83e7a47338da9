// The real SmolLM2-135M-Instruct GGUF (Q4_1) through peftcpp against
// transformers' gguf_file= loading of the same file (fp32): the same token
// ids, logits within 1e-3 on 20 real prompts (GLUE dev sentences, plain and
// in the chat template), the same 32 greedy tokens; and `peftcpp generate`
// printing them. References: tests/fixtures/make_smollm2.py.

#include <torch/torch.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>

#include "data/chat_template.h"
#include "data/tokenizer/model_files.h"
#include "models/checkpoint/state_dict.h"
#include "models/decoder/generation.h"
#include "models/decoder/load_decoder.h"
#include "tests/test_paths.h"
#include "tests/test_tensors.h"

using namespace peftcpp;
namespace fs = std::filesystem;
using peftcpp::testing::max_abs_diff;

namespace {

fs::path fixture(const std::string& name) {
  return testing::fixture_dir() / "smollm2" / name;
}

fs::path gguf_path() {
  std::ifstream in(fixture("gguf_path.txt"));
  std::string line;
  std::getline(in, line);
  REQUIRE(!line.empty());
  return line;
}

nlohmann::json prompts() {
  std::ifstream in(fixture("prompts.json"));
  return nlohmann::json::parse(in);
}

// One loaded model for every case (loading dequantizes 135M weights).
models::LoadedDecoder& smollm2() {
  static models::LoadedDecoder loaded = models::load_decoder(gguf_path());
  return loaded;
}

// 'text' for /bin/sh, any quote inside kept.
std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

at::Tensor row(const std::vector<int64_t>& ids) {
  return torch::tensor(ids, torch::kLong).unsqueeze(0);
}

std::vector<int64_t> encode(const data::Tokenizer& tok,
                            const nlohmann::json& prompt) {
  data::EncodeOptions o;
  o.add_special_tokens = !prompt["chat"].get<bool>();
  return tok.encode(prompt["text"].get<std::string>(), std::nullopt, o).ids;
}

}  // namespace

TEST_CASE(
    "SmolLM2 GGUF: token ids and logits equal transformers' on 20 real "
    "prompts",
    "[decoder][gguf][slow]") {
  torch::NoGradGuard no_grad;
  models::LoadedDecoder& model = smollm2();
  CHECK(model.missing_keys.empty());
  CHECK(model.unexpected_keys.empty());
  CHECK(model.config.num_hidden_layers == 30);
  CHECK(model.config.num_key_value_heads == 3);
  const data::Tokenizer tok = data::load_model_tokenizer(gguf_path());
  const models::StateDict refs =
      models::load_checkpoint(fixture("refs.safetensors"));
  const nlohmann::json all = prompts();
  REQUIRE(all.size() == 20);
  double worst = 0.0;
  for (size_t i = 0; i < all.size(); ++i) {
    CAPTURE(i);
    const std::string key = std::to_string(i);
    const std::vector<int64_t> ids = encode(tok, all[i]);
    REQUIRE(torch::tensor(ids, torch::kLong).equal(refs.at("ids_" + key)));
    models::DecoderInputs in;
    in.input_ids = row(ids);
    const at::Tensor logits = model.causal_lm->forward(in)[0];
    const double diff = max_abs_diff(logits[-1], refs.at("last_logits_" + key));
    CHECK(diff <= 1e-3);
    worst = std::max(worst, diff);
    if (refs.count("logits_" + key))
      CHECK(max_abs_diff(logits, refs.at("logits_" + key)) <= 1e-3);
  }
  WARN("SmolLM2 GGUF: largest |logit difference| over 20 prompts " << worst);
}

TEST_CASE("SmolLM2 GGUF: 32 greedy tokens equal transformers' generate()",
          "[decoder][gguf][generation][slow]") {
  models::LoadedDecoder& model = smollm2();
  const data::Tokenizer tok = data::load_model_tokenizer(gguf_path());
  const models::StateDict refs =
      models::load_checkpoint(fixture("refs.safetensors"));
  const nlohmann::json all = prompts();
  models::GenerationOptions options;
  options.max_new_tokens = 32;
  options.min_new_tokens = 32;
  options.stop_token_ids = model.config.eos_token_ids;
  for (const int i : {0, 1, 10, 11}) {
    CAPTURE(i);
    const at::Tensor ids = row(encode(tok, all[i]));
    const models::GenerationOutput out =
        models::generate(*model.causal_lm, ids, at::Tensor(), options);
    const at::Tensor generated = out.sequences[0].slice(0, ids.size(1));
    CHECK(generated.equal(refs.at("greedy_" + std::to_string(i))));
  }
}

TEST_CASE("SmolLM2's chat template renders the prompts transformers rendered",
          "[decoder][gguf][chat]") {
  const data::Tokenizer tok = data::load_model_tokenizer(gguf_path());
  const data::ChatFormat format =
      data::read_chat_format(gguf_path(), tok, {}, {});
  REQUIRE(format.chat_template.has_value());
  const data::ChatTemplate chat(*format.chat_template);
  for (const auto& p : prompts()) {
    if (!p["chat"].get<bool>())
      continue;
    const std::string text = chat.render(
        {{"user", p["user"].get<std::string>()}},
        /*add_generation_prompt=*/true, format.bos_token, format.eos_token);
    CHECK(text == p["text"].get<std::string>());
  }
}

// The text of `ids` up to the first stop token: `peftcpp generate` stops
// there, transformers' references ran with min_new_tokens.
std::string text_until_stop(const data::Tokenizer& tok, const at::Tensor& ref) {
  std::vector<int64_t> ids(ref.data_ptr<int64_t>(),
                           ref.data_ptr<int64_t>() + ref.numel());
  const data::ChatFormat format =
      data::read_chat_format(gguf_path(), tok, {}, {});
  for (size_t t = 0; t < ids.size(); ++t) {
    if (std::find(format.stop_token_ids.begin(), format.stop_token_ids.end(),
                  ids[t]) != format.stop_token_ids.end()) {
      ids.resize(t);
      break;
    }
  }
  return tok.decode(ids, /*skip_special_tokens=*/true);
}

TEST_CASE(
    "peftcpp generate --adapter: LoRA and prefix tuning on SmolLM2 "
    "generate what peft + transformers generate",
    "[cli][gguf][generation][peft][slow]") {
  const data::Tokenizer tok = data::load_model_tokenizer(gguf_path());
  const models::StateDict refs =
      models::load_checkpoint(fixture("adapter_greedy.safetensors"));
  const nlohmann::json prompt = prompts()[10];
  for (const std::string method : {"lora", "prefix"}) {
    CAPTURE(method);
    const std::string expected = text_until_stop(tok, refs.at(method));
    const testing::CommandResult r = testing::run_command(
        std::string(PEFTCPP_CLI_PATH) + " generate --model " +
        shell_quote(gguf_path().string()) + " --adapter " +
        shell_quote((fixture("adapters") / method).string()) +
        " --chat --max-new-tokens 16 --prompt " +
        shell_quote(prompt["user"].get<std::string>()) + " 2>&1");
    INFO(r.output);
    REQUIRE(r.code == 0);
    CHECK(r.output.find(expected + "\n") != std::string::npos);
  }
}

TEST_CASE("peftcpp generate prints SmolLM2's greedy continuation",
          "[cli][gguf][generation][slow]") {
  const data::Tokenizer tok = data::load_model_tokenizer(gguf_path());
  const models::StateDict refs =
      models::load_checkpoint(fixture("refs.safetensors"));
  const nlohmann::json all = prompts();
  const std::string expected = text_until_stop(tok, refs.at("greedy_10"));
  const testing::CommandResult r = testing::run_command(
      std::string(PEFTCPP_CLI_PATH) + " generate --model " +
      shell_quote(gguf_path().string()) +
      " --chat --max-new-tokens 32 --prompt " +
      shell_quote(all[10]["user"].get<std::string>()) + " 2>&1");
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find(expected) != std::string::npos);
}

TEST_CASE("peftcpp info and tokenize read a GGUF file", "[cli][gguf]") {
  const testing::CommandResult info = testing::run_command(
      std::string(PEFTCPP_CLI_PATH) + " info --json --model " +
      shell_quote(gguf_path().string()) + " 2>&1");
  INFO(info.output);
  REQUIRE(info.code == 0);
  const nlohmann::json j = nlohmann::json::parse(info.output);
  CHECK(j["architecture"] == "LlamaForCausalLM");
  CHECK(j["layers"] == 30);
  CHECK(j["key_value_heads"] == 3);
  CHECK(j["tied_embeddings"] == true);
  // The sum of the tensors' element counts, as gguf.GGUFReader gives it
  // (the embedding table once: tied).
  CHECK(j["parameters"] == 134515008);
  CHECK(j["parameters_by_dtype"].contains("Q4_1"));

  testing::ScratchDir dir("cli_tokenize_gguf");
  {
    std::ofstream in(dir / "in.jsonl");
    in << R"({"text": "Hello, world! It's 2024."})"
       << "\n";
  }
  const testing::CommandResult tok = testing::run_command(
      std::string(PEFTCPP_CLI_PATH) + " tokenize --tokens --model " +
      shell_quote(gguf_path().string()) + " --input " +
      (dir / "in.jsonl").string() + " --output " +
      (dir / "out.jsonl").string() + " 2>&1");
  INFO(tok.output);
  REQUIRE(tok.code == 0);
  std::ifstream out(dir / "out.jsonl");
  const nlohmann::json line = nlohmann::json::parse(out);
  const data::Tokenizer tokenizer = data::load_model_tokenizer(gguf_path());
  CHECK(line["input_ids"].get<std::vector<int64_t>>() ==
        tokenizer.encode("Hello, world! It's 2024.").ids);
}
