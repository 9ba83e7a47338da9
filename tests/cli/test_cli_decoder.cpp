// `peftcpp predict` on decoder-only models: a ...ForSequenceClassification
// gives transformers' logits; a causal LM gives the log-likelihood of each
// input computed from transformers' logits. Inputs are pre-tokenized lines
// from the decoder fixtures (tests/fixtures/make_decoders.py).

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <fstream>

#include "models/checkpoint/state_dict.h"
#include "tests/test_paths.h"
#include "tests/test_tensors.h"

using namespace peftcpp;
namespace fs = std::filesystem;
using peftcpp::testing::max_abs_diff;

namespace {

fs::path decoders() {
  return testing::fixture_dir() / "decoders";
}

// The right-padded fixture rows as {"input_ids": [...]} lines, padding cut.
void write_inputs(const models::StateDict& refs, const fs::path& path) {
  const at::Tensor ids = refs.at("right_input_ids");
  const at::Tensor mask = refs.at("right_attention_mask");
  std::ofstream out(path);
  for (int64_t r = 0; r < ids.size(0); ++r) {
    out << "{\"input_ids\": [";
    const int64_t n = mask[r].sum().item<int64_t>();
    for (int64_t t = 0; t < n; ++t)
      out << (t ? ", " : "") << ids[r][t].item<int64_t>();
    out << "]}\n";
  }
}

models::StateDict predict(const std::string& model, const fs::path& inputs,
                          const testing::ScratchDir& dir) {
  const testing::CommandResult r = testing::run_command(
      std::string(PEFTCPP_CLI_PATH) + " predict --model " +
      (decoders() / "models" / model).string() + " --input " + inputs.string() +
      " --output " + (dir / (model + ".safetensors")).string() + " 2>&1");
  INFO(r.output);
  REQUIRE(r.code == 0);
  return models::load_checkpoint(dir / (model + ".safetensors"));
}

}  // namespace

TEST_CASE("peftcpp predict: a decoder classifier gives transformers' logits",
          "[cli][decoder]") {
  testing::ScratchDir dir("cli_predict_decoder_cls");
  for (const std::string model : {"llama_cls", "gpt2_cls"}) {
    CAPTURE(model);
    const models::StateDict refs =
        models::load_checkpoint(decoders() / "refs" / (model + ".safetensors"));
    write_inputs(refs, dir / "in.jsonl");
    const models::StateDict out = predict(model, dir / "in.jsonl", dir);
    CHECK(max_abs_diff(out.at("logits"), refs.at("right_logits")) <= 1e-5);
  }
}

TEST_CASE("peftcpp predict: a causal LM gives each input's log-likelihood",
          "[cli][decoder]") {
  testing::ScratchDir dir("cli_predict_decoder_lm");
  const models::StateDict refs =
      models::load_checkpoint(decoders() / "refs" / "llama.safetensors");
  write_inputs(refs, dir / "in.jsonl");
  const models::StateDict out = predict("llama", dir / "in.jsonl", dir);
  const at::Tensor ids = refs.at("right_input_ids");
  const at::Tensor mask = refs.at("right_attention_mask");
  const at::Tensor log_probs =
      refs.at("right_logits").slice(1, 0, -1).log_softmax(-1);
  const at::Tensor picked =
      log_probs.gather(-1, ids.slice(1, 1).unsqueeze(-1)).squeeze(-1);
  const at::Tensor expected = (picked * mask.slice(1, 1).to(at::kFloat)).sum(1);
  CHECK(max_abs_diff(out.at("log_likelihood"), expected) <= 1e-4);
  CHECK(out.at("num_tokens").equal(mask.sum(1)));
  CHECK(out.at("last_token_logits").size(1) == 96);
}
