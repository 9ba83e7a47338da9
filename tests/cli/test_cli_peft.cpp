// The CLI with adapters, as users call it: `peftcpp predict --adapter` gives
// the logits Python PEFT gives for the same adapter, several adapters switch
// with --set-adapter, and `peftcpp merge` writes a folder transformers loads
// (no PEFT) that computes the adapted model's logits. References:
// tests/fixtures/make_peft.py.

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <fstream>

#include "models/checkpoint/state_dict.h"
#include "tests/test_paths.h"
#include "tests/test_tensors.h"

using namespace peftcpp;
using peftcpp::testing::max_abs_diff;
namespace fs = std::filesystem;

namespace {

fs::path peft_case(const std::string& name) {
  return testing::fixture_dir() / "peft" / name;
}

testing::CommandResult run_cli(const std::string& args) {
  return testing::run_command(std::string(PEFTCPP_CLI_PATH) + " " + args);
}

std::string quoted(const fs::path& p) {
  return "'" + p.string() + "'";
}

// The fixture batch as JSONL lines with ids and type ids (padding dropped).
fs::path write_inputs(const std::string& model, const fs::path& dir) {
  const auto io = models::load_checkpoint(peft_case(model + "_base") /
                                          "inputs.safetensors");
  const at::Tensor ids = io.at("input_ids");
  const at::Tensor mask = io.at("attention_mask");
  const at::Tensor types = io.at("token_type_ids");
  const fs::path path = dir / "inputs.jsonl";
  std::ofstream out(path);
  for (int64_t r = 0; r < ids.size(0); ++r) {
    std::string id_list, type_list;
    for (int64_t c = 0; c < ids.size(1); ++c) {
      if (mask[r][c].item<int64_t>() == 0)
        continue;
      id_list += (id_list.empty() ? "" : ",") +
                 std::to_string(ids[r][c].item<int64_t>());
      type_list += (type_list.empty() ? "" : ",") +
                   std::to_string(types[r][c].item<int64_t>());
    }
    out << R"({"input_ids": [)" << id_list << R"(], "token_type_ids": [)"
        << type_list << "]}\n";
  }
  return path;
}

at::Tensor expected_logits(const std::string& name) {
  return models::load_checkpoint(peft_case(name) / "expected.safetensors")
      .at("logits");
}

}  // namespace

TEST_CASE("predict --adapter gives PEFT's logits for each method",
          "[cli][peft]") {
  for (const std::string name :
       {"bert_lora", "bert_dora", "bert_ia3", "bert_prompt_tuning_random",
        "roberta_p_tuning", "roberta_prefix_tuning_proj"}) {
    SECTION(name) {
      const std::string model = name.substr(0, name.find('_'));
      testing::ScratchDir dir("cli_peft_predict");
      const fs::path inputs = write_inputs(model, dir.path());
      const auto r = run_cli(
          "predict --model " + quoted(peft_case(model + "_base")) +
          " --adapter " + quoted(peft_case(name) / "adapter") + " --input " +
          quoted(inputs) + " --output " + quoted(dir / "out.safetensors"));
      INFO(r.output);
      REQUIRE(r.code == 0);
      const auto out = models::load_checkpoint(dir / "out.safetensors");
      CHECK(max_abs_diff(out.at("logits"), expected_logits(name)) <= 1e-5);
    }
  }
}

TEST_CASE(
    "predict with several adapters runs the last or the --set-adapter one",
    "[cli][peft]") {
  testing::ScratchDir dir("cli_peft_several");
  const fs::path inputs = write_inputs("roberta", dir.path());
  // Adapters are named after their folders.
  for (const std::string name : {"roberta_lora", "roberta_prefix_tuning"})
    fs::copy(peft_case(name) / "adapter", dir / name);
  const std::string common =
      "predict --model " + quoted(peft_case("roberta_base")) + " --adapter " +
      quoted(dir / "roberta_lora") + " --adapter " +
      quoted(dir / "roberta_prefix_tuning") + " --input " + quoted(inputs);
  auto r = run_cli(common + " --output " + quoted(dir / "last.safetensors"));
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(max_abs_diff(
            models::load_checkpoint(dir / "last.safetensors").at("logits"),
            expected_logits("roberta_prefix_tuning")) <= 1e-5);
  r = run_cli(common + " --set-adapter roberta_lora --output " +
              quoted(dir / "chosen.safetensors"));
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(max_abs_diff(
            models::load_checkpoint(dir / "chosen.safetensors").at("logits"),
            expected_logits("roberta_lora")) <= 1e-5);
  r = run_cli(common + " --set-adapter nope --output " +
              quoted(dir / "x.safetensors"));
  CHECK(r.code == 1);
  CHECK_THAT(r.output,
             Catch::Contains("--set-adapter") &&
                 Catch::Contains("roberta_lora, roberta_prefix_tuning"));
}

TEST_CASE("merge writes a folder transformers loads with the adapted logits",
          "[cli][peft]") {
  for (const std::string name : {"bert_lora", "bert_lora_bias", "roberta_dora",
                                 "roberta_ia3", "bert_lora_layers"}) {
    SECTION(name) {
      const std::string model = name.substr(0, name.find('_'));
      testing::ScratchDir dir("cli_peft_merge");
      const fs::path merged = dir / "merged";
      const auto r =
          run_cli("merge --model " + quoted(peft_case(model + "_base")) +
                  " --adapter " + quoted(peft_case(name) / "adapter") +
                  " --out " + quoted(merged));
      INFO(r.output);
      REQUIRE(r.code == 0);
      CHECK(fs::exists(merged / "config.json"));
      CHECK(fs::exists(merged / "model.safetensors"));
      const auto check = testing::run_fixture_script(
          "check_merged_model.py",
          "--model " + quoted(merged) + " --inputs " +
              quoted(peft_case(model + "_base") / "inputs.safetensors") +
              " --expected " +
              quoted(peft_case(name) / "expected.safetensors"));
      INFO(check.output);
      CHECK(check.code == 0);
    }
  }
}

TEST_CASE(
    "merge refuses a method that cannot merge and a non-empty output folder",
    "[cli][peft][errors]") {
  testing::ScratchDir dir("cli_peft_merge_errors");
  auto r = run_cli("merge --model " + quoted(peft_case("bert_base")) +
                   " --adapter " +
                   quoted(peft_case("bert_prefix_tuning") / "adapter") +
                   " --out " + quoted(dir / "merged"));
  CHECK(r.code == 1);
  CHECK_THAT(r.output, Catch::Contains("expected a mergeable method"));
  CHECK_FALSE(fs::exists(dir / "merged" / "model.safetensors"));

  fs::create_directories(dir / "full");
  std::ofstream(dir / "full" / "keep.txt") << "x";
  r = run_cli("merge --model " + quoted(peft_case("bert_base")) +
              " --adapter " + quoted(peft_case("bert_lora") / "adapter") +
              " --out " + quoted(dir / "full"));
  CHECK(r.code == 1);
  CHECK_THAT(r.output, Catch::Contains("--force"));
}
