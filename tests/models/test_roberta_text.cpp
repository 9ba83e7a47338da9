// RoBERTa from raw text, end to end through `peftcpp predict`: a byte-level
// BPE tokenizer (RobertaProcessing, <mask> lstrip) saved by transformers and
// a tiny random RobertaForSequenceClassification give transformers' logits
// for 40 SST-2 dev sentences and 10 RTE pairs (fp32, |delta| <= 1e-5).
// References: tests/fixtures/make_roberta_text.py.

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include "models/checkpoint/state_dict.h"
#include "tests/test_paths.h"
#include "tests/test_tensors.h"

using namespace peftcpp;
using peftcpp::testing::max_abs_diff;

TEST_CASE("RoBERTa text input: peftcpp predict gives transformers' logits",
          "[cli][roberta][tokenizer]") {
  const auto dir = testing::fixture_dir() / "roberta_text";
  testing::ScratchDir out("roberta_text_predict");
  const testing::CommandResult r = testing::run_command(
      std::string(PEFTCPP_CLI_PATH) + " predict --model " +
      (dir / "model").string() + " --input " + (dir / "inputs.jsonl").string() +
      " --output " + (out / "out.safetensors").string() +
      " --max-length 128 2>&1");
  INFO(r.output);
  REQUIRE(r.code == 0);
  const models::StateDict ours =
      models::load_checkpoint(out / "out.safetensors");
  const models::StateDict theirs =
      models::load_checkpoint(dir / "logits.safetensors");
  REQUIRE(ours.at("logits").size(0) == 50);
  CHECK(max_abs_diff(ours.at("logits"), theirs.at("logits")) <= 1e-5);
}
