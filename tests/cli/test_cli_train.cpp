// `peftcpp train` and `peftcpp eval` as a user runs them: the review set
// with the default config on a tiny head-less BERT (tests/fixtures/
// make_train.py), an adapter that `predict` and Python PEFT both load, a
// run killed with SIGKILL that resumes to the same bytes, and bad inputs
// that fail clearly without leaving an adapter behind.

#include <signal.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/test_paths.h"

namespace fs = std::filesystem;
using peftcpp::testing::CommandResult;
using peftcpp::testing::ScratchDir;

namespace {

const fs::path kConfig =
    fs::path(PEFTCPP_SOURCE_DIR) / "examples/configs/reviews_lora.yaml";

fs::path tiny_model() {
  return peftcpp::testing::fixture_dir() / "train/tiny_bert";
}

// The default config on the tiny model, small and quick.
std::string train_args(const fs::path& out) {
  return "train --config " + kConfig.string() + " --model.path " +
         tiny_model().string() + " --output-dir " + out.string() +
         " --task.max_length 32 --trainer.num_train_epochs 2"
         " --trainer.per_device_train_batch_size 8 --model.threads 1"
         " --task.cache_dir " +
         (out.parent_path() / "cache").string();
}

CommandResult cli(const std::string& args) {
  return peftcpp::testing::run_command(std::string(PEFTCPP_CLI_PATH) + " " +
                                       args);
}

std::string bytes(const fs::path& path) {
  return peftcpp::testing::read_file_bytes(path);
}
void write(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

TEST_CASE(
    "train on the review set writes an adapter that predict and "
    "Python PEFT load with the same logits",
    "[cli][train]") {
  ScratchDir tmp("cli_train");
  const fs::path out = tmp / "run";
  const CommandResult r = cli(train_args(out));
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.output, Catch::Contains("trainable params:"));
  CHECK_THAT(r.output, Catch::Contains("best eval accuracy"));
  CHECK_THAT(r.output, Catch::Contains("train ["));  // the progress bar
  for (const char* f :
       {"adapter/adapter_config.json", "adapter/adapter_model.safetensors",
        "adapter/head_config.json", "metrics.jsonl", "summary.json",
        "training_curves.png", "run_config.yaml"}) {
    INFO(f);
    CHECK(fs::exists(out / f));
  }
  CHECK(bytes(out / "training_curves.png").rfind("\x89PNG", 0) == 0);

  write(tmp / "in.jsonl",
        "{\"text\": \"The battery lasts all day and charges fast.\"}\n"
        "{\"text\": \"It broke after a week and support never answered.\"}\n"
        "{\"text\": \"Not bad at all, though the manual is confusing.\"}\n");
  const CommandResult p = cli(
      "predict --model " + tiny_model().string() + " --adapter " +
      (out / "adapter").string() + " --input " + (tmp / "in.jsonl").string() +
      " --output " + (tmp / "ours.safetensors").string());
  INFO(p.output);
  REQUIRE(p.code == 0);
  const CommandResult check = peftcpp::testing::run_fixture_script(
      "check_trained_adapter.py", "--model " + tiny_model().string() +
                                      " --adapter " +
                                      (out / "adapter").string() + " --input " +
                                      (tmp / "in.jsonl").string() + " --ours " +
                                      (tmp / "ours.safetensors").string());
  INFO(check.output);
  CHECK(check.code == 0);

  // eval reproduces the run's best dev accuracy from the saved adapter.
  const CommandResult e = cli(
      "eval --model " + tiny_model().string() + " --adapter " +
      (out / "adapter").string() + " --config " + kConfig.string() +
      " --json " + (tmp / "eval.json").string() + " --set task.max_length=32");
  INFO(e.output);
  CHECK(e.code == 0);
  CHECK_THAT(e.output, Catch::Contains("accuracy"));
}

TEST_CASE(
    "a run killed with SIGKILL mid-epoch and resumed ends with an "
    "adapter bitwise equal to an uninterrupted run",
    "[cli][train][resume]") {
  ScratchDir tmp("cli_resume");
  const std::string common =
      " --trainer.save_steps 5 --trainer.per_device_train_batch_size 4"
      " --trainer.logging_steps 5";
  const fs::path full = tmp / "full";
  const CommandResult a = cli(train_args(full) + common);
  INFO(a.output);
  REQUIRE(a.code == 0);

  // The same run in the background, killed once it has written a
  // checkpoint past the first ones and before it finishes.
  const fs::path part = tmp / "part";
  const std::string launch = std::string(PEFTCPP_CLI_PATH) + " " +
                             train_args(part) + common + " >" +
                             (tmp / "part.log").string() + " 2>&1 & echo $!";
  const CommandResult bg = peftcpp::testing::run_command(launch);
  const pid_t pid = static_cast<pid_t>(std::stol(bg.output));
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (!fs::exists(part / "checkpoint-35") &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ::kill(pid, SIGKILL);
  peftcpp::testing::run_command("sleep 0.2");
  INFO(bytes(tmp / "part.log"));
  REQUIRE(fs::exists(part / "checkpoint-35"));
  // Killed before the end: no summary, no adapter (the test means nothing
  // otherwise).
  REQUIRE_FALSE(fs::exists(part / "summary.json"));
  CHECK_FALSE(fs::exists(part / "adapter"));

  const CommandResult b = cli(train_args(part) + common + " --resume");
  INFO(b.output);
  REQUIRE(b.code == 0);
  CHECK_THAT(b.output, Catch::Contains("resuming from"));
  CHECK(bytes(full / "adapter/adapter_model.safetensors") ==
        bytes(part / "adapter/adapter_model.safetensors"));
  CHECK(bytes(full / "adapter/adapter_model.safetensors").size() > 1000);
}

TEST_CASE("bad inputs fail with a clear message and leave no adapter",
          "[cli][train][errors]") {
  ScratchDir tmp("cli_train_errors");
  const std::string header = "sentence\tlabel\n";
  struct Case {
    std::string name, train_text, expected;
  };
  const std::vector<Case> cases = {
      {"missing column", "text\tlabel\nGreat phone.\tpositive\n",
       "expected a column"},
      {"label outside the set",
       header + "Great phone.\tpositive\nIt is fine.\tneutral\n", "neutral"},
      {"empty file", "", "empty"},
      {"non-UTF-8 line",
       header + "Great phone.\tpositive\nBad \xff\xfe one.\tnegative\n",
       "UTF-8"},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      write(tmp / "train.tsv", c.train_text);
      const fs::path out = tmp / "out";
      const CommandResult r = cli(train_args(out) + " --task.train_file " +
                                  (tmp / "train.tsv").string());
      INFO(r.output);
      CHECK(r.code == 1);
      CHECK_THAT(r.output, Catch::Contains(c.expected));
      CHECK_THAT(r.output, Catch::Contains("train.tsv"));
      CHECK_FALSE(fs::exists(out / "adapter"));
    }
  }
  SECTION("a config key that does not exist") {
    const CommandResult r =
        cli(train_args(tmp / "out") + " --trainer.learning_rat 1e-3");
    INFO(r.output);
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("learning_rat"));
    CHECK_THAT(r.output, Catch::Contains("learning_rate"));  // did you mean
    CHECK_FALSE(fs::exists(tmp / "out" / "adapter"));
  }
  SECTION("a checkpoint from another run configuration") {
    const fs::path out = tmp / "out";
    REQUIRE(cli(train_args(out) + " --trainer.save_steps 5").code == 0);
    const std::string adapter_before =
        bytes(out / "adapter/adapter_model.safetensors");
    const CommandResult r = cli(train_args(out) +
                                " --trainer.save_steps 5 --resume"
                                " --trainer.learning_rate 1e-4");
    INFO(r.output);
    CHECK(r.code == 1);
    CHECK_THAT(r.output, Catch::Contains("another configuration"));
    CHECK(bytes(out / "adapter/adapter_model.safetensors") == adapter_before);
  }
}
