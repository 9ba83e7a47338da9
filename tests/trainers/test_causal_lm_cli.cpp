// `peftcpp train` / `peftcpp eval` for instruction tuning as a user runs
// them: the example config (SST-2 phrased as instructions) on a tiny LLaMA
// with SmolLM2's tokenizer (tests/fixtures/make_causal_lm_train.py), chat
// JSONL with packing, and run-config / data errors that name what is wrong.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <regex>

#include "tests/test_paths.h"
#include "trainers/run_config.h"

namespace fs = std::filesystem;
using peftcpp::testing::CommandResult;
using peftcpp::testing::ScratchDir;

namespace {

const fs::path kConfig = fs::path(PEFTCPP_SOURCE_DIR) /
                         "examples/configs/smollm2_sst2_instruct.yaml";

fs::path fixture(const std::string& name) {
  return peftcpp::testing::fixture_dir() / "causal_lm_train" / name;
}

CommandResult cli(const std::string& args) {
  return peftcpp::testing::run_command(std::string(PEFTCPP_CLI_PATH) + " " +
                                       args);
}

// The example config on the tiny model: a few dozen SST-2 rows.
std::string tiny_args() {
  return "--config " + kConfig.string() + " --model.path " +
         fixture("models/llama").string() + " --task.data_dir " +
         (peftcpp::testing::shared_dir() / "data/glue/SST-2").string() +
         " --task.max_train_examples 64 --task.max_eval_examples 24"
         " --trainer.learning_rate 2e-2 --trainer.num_train_epochs 2"
         " --trainer.per_device_train_batch_size 8"
         " --model.threads 1";
}

double eval_loss(const std::string& output) {
  std::smatch m;
  REQUIRE(std::regex_search(output, m, std::regex(R"(\n  loss +([0-9.]+))")));
  return std::stod(m[1]);
}

void write(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

peftcpp::trainers::RunConfig parse(const std::string& yaml) {
  return peftcpp::trainers::parse_run_config(yaml, {}, "/base", "cfg");
}

std::string parse_error(const std::string& yaml) {
  try {
    parse(yaml);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE(
    "train with the SmolLM2 instruction config on a tiny LLaMA writes a "
    "CAUSAL_LM adapter that lowers the held-out loss in peftcpp eval",
    "[cli][train][causal_lm]") {
  ScratchDir tmp("causal_lm_cli");
  const fs::path out = tmp / "run";
  const CommandResult r =
      cli("train " + tiny_args() + " --output-dir " + out.string());
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.output, Catch::Contains("trainable params:"));
  CHECK_THAT(r.output, Catch::Contains("train: 64 examples -> 64 rows"));
  CHECK_THAT(r.output, Catch::Contains("perplexity"));
  std::ifstream cfg(out / "adapter/adapter_config.json");
  const auto adapter = nlohmann::json::parse(cfg);
  CHECK(adapter.at("task_type") == "CAUSAL_LM");
  CHECK(adapter.at("r") == 8);

  const std::string eval =
      "eval --config " + kConfig.string() + " --model " +
      fixture("models/llama").string() + " --set task.data_dir=" +
      (peftcpp::testing::shared_dir() / "data/glue/SST-2").string() +
      " --set task.max_eval_examples=24 --threads 1";
  const CommandResult base = cli(eval);
  const CommandResult tuned =
      cli(eval + " --adapter " + (out / "adapter").string());
  INFO(base.output << tuned.output);
  REQUIRE(base.code == 0);
  REQUIRE(tuned.code == 0);
  CHECK_THAT(tuned.output, Catch::Contains("perplexity"));
  CHECK(eval_loss(tuned.output) < eval_loss(base.output) - 0.25);
  // The adapter reproduces the run's own best evaluation.
  std::smatch m;
  REQUIRE(std::regex_search(r.output, m,
                            std::regex(R"(best eval loss +\| ([0-9.]+))")));
  CHECK(eval_loss(tuned.output) == Approx(std::stod(m[1])).epsilon(1e-4));
}

TEST_CASE("train on chat JSONL with packing", "[cli][train][causal_lm]") {
  ScratchDir tmp("causal_lm_cli_chat");
  write(tmp / "run.yaml",
        "model: {path: " + fixture("models/llama").string() +
            "}\n"
            "task: {task_type: instruction, train_file: " +
            fixture("data/chat_train.jsonl").string() +
            ", eval_file: " + fixture("data/chat_dev.jsonl").string() +
            ", packing: true, max_length: 64}\n"
            "method: {peft_type: LORA, r: 4, target_modules: [q_proj]}\n"
            "trainer: {num_train_epochs: 1, batch_size: 8, "
            "learning_rate: 1e-2}\n");
  const CommandResult r = cli("train --config " + (tmp / "run.yaml").string() +
                              " --output-dir " + (tmp / "out").string());
  INFO(r.output);
  REQUIRE(r.code == 0);
  // 96 chats of ~50 tokens packed into 64-token rows.
  std::smatch m;
  REQUIRE(std::regex_search(r.output, m,
                            std::regex(R"(train: 96 examples -> (\d+) rows)")));
  CHECK(std::stoi(m[1]) < 96);
  CHECK(fs::exists(tmp / "out/adapter/adapter_model.safetensors"));
}

TEST_CASE("bad instruction data fails the run with the file and line",
          "[cli][train][causal_lm][errors]") {
  ScratchDir tmp("causal_lm_cli_bad");
  const auto run_with = [&](const std::string& train_lines) {
    write(tmp / "train.jsonl", train_lines);
    write(tmp / "run.yaml",
          "model: {path: " + fixture("models/llama").string() +
              "}\n"
              "task: {task_type: instruction, train_file: train.jsonl}\n"
              "method: {peft_type: LORA}\n"
              "output_dir: out\n");
    return cli("train --config " + (tmp / "run.yaml").string());
  };
  CommandResult r = run_with("{\"prompt\": \"a\"}\n");
  CHECK(r.code == 1);
  CHECK_THAT(r.output, Catch::Contains("train.jsonl:1] expected an example "
                                       "with a \"completion\" string"));
  r = run_with("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n");
  CHECK(r.code == 1);
  CHECK_THAT(r.output, Catch::Contains("ends with an \"assistant\" turn"));
  r = run_with("");
  CHECK(r.code == 1);
  CHECK_THAT(r.output, Catch::Contains("expected at least one instruction "
                                       "example, got none"));
  CHECK_FALSE(fs::exists(tmp / "out/adapter"));
}

TEST_CASE("instruction run configs: defaults and errors",
          "[trainers][run_config][causal_lm]") {
  const std::string model = "model: {path: m.gguf}\n";
  const auto cfg = parse(model +
                         "task: {task_type: instruction, train_file: t.jsonl, "
                         "packing: true}\nmethod: {peft_type: LORA}\n");
  CHECK(cfg.task.instruction);
  CHECK(cfg.task.packing);
  CHECK(cfg.method.task_type == "CAUSAL_LM");
  CHECK(cfg.trainer.metrics.empty());
  CHECK(cfg.trainer.metric_for_best_model == "loss");
  CHECK_FALSE(cfg.trainer.greater_is_better);

  const auto glue =
      parse(model +
            "task: {task_type: instruction, glue: sst2, data_dir: d, "
            "prompt_template: \"R: {text}\\nS:\", label_completions: [\" no\", "
            "\" yes\"], use_chat_template: true}\nmethod: {peft_type: LORA}\n"
            "trainer: {metric_for_best_model: perplexity}\n");
  CHECK(glue.task.instruction_template.prompt == "R: {text}\nS:");
  CHECK(glue.task.instruction_template.completions ==
        std::vector<std::string>{" no", " yes"});
  CHECK(glue.task.instruction_template.as_chat);
  CHECK_FALSE(glue.trainer.greater_is_better);

  const std::string task =
      "task: {task_type: instruction, train_file: t.jsonl}\n";
  CHECK_THAT(parse_error(model + task +
                         "method: {peft_type: LORA, task_type: SEQ_CLS}\n"),
             Catch::Contains("expected method.task_type CAUSAL_LM, got "
                             "\"SEQ_CLS\""));
  CHECK_THAT(parse_error(model + "task: {train_file: t.tsv, packing: true}\n"
                                 "method: {peft_type: LORA}\n"),
             Catch::Contains("expected task.packing to be left out unless "
                             "task.task_type is instruction"));
  CHECK_THAT(parse_error(model + "task: {task_type: instruction, glue: sst2, "
                                 "data_dir: d}\nmethod: {peft_type: LORA}\n"),
             Catch::Contains("expected task.prompt_template to be a prompt "
                             "for the GLUE rows"));
  CHECK_THAT(
      parse_error(model + "task: {task_type: instruction, train_file: t.tsv, "
                          "prompt_template: \"{text}\"}\n"
                          "method: {peft_type: LORA}\n"),
      Catch::Contains("task.label_completions to be one completion "
                      "per class"));
  CHECK_THAT(
      parse_error(model + "task: {task_type: instruction, train_file: t.jsonl, "
                          "metrics: [accuracy]}\nmethod: {peft_type: LORA}\n"),
      Catch::Contains("held-out loss and perplexity"));
  CHECK_THAT(
      parse_error(model + "task: {task_type: instruction, train_file: t.jsonl, "
                          "text_column: s}\nmethod: {peft_type: LORA}\n"),
      Catch::Contains("left out for instruction JSONL files"));
}

TEST_CASE("an instruction run on an encoder folder is refused by name",
          "[cli][train][causal_lm][errors]") {
  ScratchDir tmp("causal_lm_cli_encoder");
  write(tmp / "run.yaml",
        "model: {path: " + peftcpp::testing::minilm_dir().string() +
            "}\n"
            "task: {task_type: instruction, train_file: " +
            fixture("data/plain_train.jsonl").string() +
            "}\nmethod: {peft_type: LORA}\noutput_dir: out\n");
  const CommandResult r = cli("train --config " + (tmp / "run.yaml").string());
  CHECK(r.code == 1);
  CHECK_THAT(r.output, Catch::Contains("expected model.path a decoder-only "
                                       "model"));
}

TEST_CASE(
    "a decoder folder with a classification task trains a SEQ_CLS adapter "
    "(score head in modules_to_save)",
    "[cli][train][causal_lm]") {
  ScratchDir tmp("causal_lm_cli_seq_cls");
  write(tmp / "run.yaml",
        "model: {path: " + fixture("models/llama").string() +
            ", threads: 1}\n"
            "task: {glue: sst2, data_dir: " +
            (peftcpp::testing::shared_dir() / "data/glue/SST-2").string() +
            ", max_train_examples: 64, max_eval_examples: 24, cache_dir: " +
            (tmp / "cache").string() +
            "}\n"
            "method: {peft_type: LORA, r: 4, target_modules: [q_proj]}\n"
            "trainer: {num_train_epochs: 1, batch_size: 16, "
            "learning_rate: 1e-2}\n");
  const CommandResult r = cli("train --config " + (tmp / "run.yaml").string() +
                              " --output-dir " + (tmp / "out").string());
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.output, Catch::Contains("best eval accuracy"));
  std::ifstream cfg(tmp / "out/adapter/adapter_config.json");
  const auto adapter = nlohmann::json::parse(cfg);
  CHECK(adapter.at("task_type") == "SEQ_CLS");
  CHECK_THAT(adapter.at("modules_to_save").dump(), Catch::Contains("score"));
}
