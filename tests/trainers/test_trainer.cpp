// The training loop on a tiny BERT with LoRA and a synthetic task: it
// learns, it trains only the adapter, it is reproducible bit for bit on the
// CPU, a resumed run ends where an uninterrupted one does, and bad runs
// stop with a clear message and no adapter.

#include <torch/torch.h>
#include <unistd.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>

#include "tests/test_paths.h"
#include "tests/trainers/trainer_fixtures.h"
#include "trainers/checkpoint.h"
#include "trainers/trainer.h"
#include "trainers/training_report.h"

namespace fs = std::filesystem;
using namespace peftcpp;
using peftcpp::testing::ScratchDir;
using peftcpp::testing::synthetic_dataset;
using peftcpp::testing::tiny_lora_classifier;

namespace {

trainers::TrainerOptions small_run(const fs::path& out) {
  trainers::TrainerOptions o;
  o.output_dir = out;
  o.num_train_epochs = 4;
  o.per_device_train_batch_size = 8;
  o.per_device_eval_batch_size = 16;
  o.adamw.learning_rate = 1e-2;
  o.adamw.weight_decay = 0.01;
  o.warmup_ratio = 0.1;
  o.logging_steps = 2;
  o.metrics = {data::Metric::kAccuracy};
  o.show_progress = false;
  o.save_total_limit = 100;
  return o;
}

std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace

TEST_CASE(
    "training learns the task, changes only the adapter and writes its "
    "outputs",
    "[trainers][trainer]") {
  const auto train = synthetic_dataset(96, 1);
  const auto dev = synthetic_dataset(48, 2);
  auto model = tiny_lora_classifier(0);
  std::map<std::string, at::Tensor> before;
  for (const auto& item : model.model()->named_parameters())
    before[item.key()] = item.value().detach().clone();
  ScratchDir out_dir("learn");
  const fs::path out = out_dir.path();
  trainers::Trainer trainer(model, train, &dev, small_run(out), "fp", 0);
  const double initial_accuracy = trainer.evaluate(dev).metrics.at("accuracy");
  const trainers::TrainResult r = trainer.train();

  CHECK(r.global_step == 4 * 12);
  REQUIRE(r.best_eval.has_value());
  CHECK(r.best_eval->metrics.at("accuracy") > initial_accuracy);
  CHECK(r.best_eval->metrics.at("accuracy") >= 0.8);
  const auto log = read_jsonl(out / "metrics.jsonl");
  std::vector<double> losses;
  int evals = 0;
  for (const auto& j : log) {
    if (j.contains("loss"))
      losses.push_back(j["loss"].get<double>());
    if (j.contains("eval_accuracy"))
      ++evals;
  }
  CHECK(evals == 4);  // one per epoch
  REQUIRE(losses.size() >= 4);
  CHECK(losses.back() < losses.front());

  int changed_trainable = 0;
  for (const auto& item : model.model()->named_parameters()) {
    const bool same = torch::equal(before.at(item.key()), item.value());
    if (item.value().requires_grad()) {
      changed_trainable += same ? 0 : 1;
    } else {
      INFO(item.key());
      CHECK(same);
    }
  }
  CHECK(changed_trainable > 0);

  for (const char* f :
       {"adapter/adapter_config.json", "adapter/adapter_model.safetensors",
        "adapter/head_config.json", "summary.json", "training_curves.png"}) {
    INFO(f);
    CHECK(fs::exists(out / f));
  }
  const auto summary =
      nlohmann::json::parse(std::ifstream(out / "summary.json"));
  CHECK(summary["global_step"] == 48);
  CHECK(summary["trainable_parameters"].get<int64_t>() ==
        r.trainable_parameters);
  CHECK(trainers::latest_checkpoint(out) == out / "checkpoint-48");
  const std::string table = trainers::format_summary_table(r);
  CHECK_THAT(table, Catch::Contains("best eval accuracy"));
}

TEST_CASE("a CPU run is reproducible bit for bit, and the seed matters",
          "[trainers][trainer]") {
  const auto train = synthetic_dataset(40, 3);
  auto run = [&](uint64_t seed, const std::string& name) {
    auto model = tiny_lora_classifier(0);
    ScratchDir tmp(name);
    auto o = small_run(tmp / "run");
    o.num_train_epochs = 2;
    o.seed = seed;
    trainers::Trainer(model, train, nullptr, o, "fp", 0).train();
    const std::string bytes = peftcpp::testing::read_file_bytes(
        o.output_dir / "adapter/adapter_model.safetensors");
    return bytes;
  };
  const std::string a = run(5, "repro_a");
  const std::string b = run(5, "repro_b");
  const std::string c = run(6, "repro_c");
  CHECK(!a.empty());
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE(
    "a run resumed from a mid-epoch checkpoint ends bitwise equal to an "
    "uninterrupted run",
    "[trainers][trainer][resume]") {
  const auto train = synthetic_dataset(60, 4);
  const auto dev = synthetic_dataset(20, 5);
  auto options = [&](const fs::path& out) {
    auto o = small_run(out);
    o.num_train_epochs = 3;
    o.save_steps = 3;     // checkpoints mid-epoch (8 steps per epoch)
    o.logging_steps = 3;  // step 9 is logged before its checkpoint
    // The last weights, not the best: the best adapter folder of the
    // interrupted run is not part of what this test copies.
    o.load_best_model_at_end = false;
    return o;
  };
  ScratchDir full_dir("resume_full");
  const fs::path full = full_dir.path();
  {
    auto model = tiny_lora_classifier(0);
    trainers::Trainer(model, train, &dev, options(full), "fp", 0).train();
  }
  // The interrupted run: its state at step 9 (epoch 1, batch 1) is the full
  // run's checkpoint-9, the only thing a killed run leaves behind.
  ScratchDir resumed_dir("resume_part");
  const fs::path resumed = resumed_dir.path();
  fs::create_directories(resumed);
  fs::copy(full / "checkpoint-9", resumed / "checkpoint-9",
           fs::copy_options::recursive);
  // The killed run's log went on past its last checkpoint.
  fs::copy(full / "metrics.jsonl", resumed / "metrics.jsonl");
  {
    // The same base, but other adapter weights: everything trainable must
    // come from the checkpoint.
    auto model = tiny_lora_classifier(0);
    {
      torch::NoGradGuard no_grad;
      for (auto& [name, p] : model.trainable_parameters())
        p.normal_();
    }
    auto o = options(resumed);
    o.resume = true;
    trainers::Trainer(model, train, &dev, o, "fp", 0).train();
  }
  CHECK(peftcpp::testing::read_file_bytes(
            full / "adapter/adapter_model.safetensors") ==
        peftcpp::testing::read_file_bytes(resumed /
                                          "adapter/adapter_model.safetensors"));
  CHECK(peftcpp::testing::read_file_bytes(full / "checkpoint-24/optimizer.pt")
            .size() > 0);
  // The log of the resumed run reads like one run: the loss records of
  // steps 9 (before the checkpoint) and 12 (after it) once each.
  int at_step_9 = 0, at_step_12 = 0;
  for (const auto& j : read_jsonl(resumed / "metrics.jsonl")) {
    if (!j.contains("loss"))
      continue;
    at_step_9 += j["step"] == 9 ? 1 : 0;
    at_step_12 += j["step"] == 12 ? 1 : 0;
  }
  CHECK(at_step_9 == 1);
  CHECK(at_step_12 == 1);
}

TEST_CASE(
    "gradient accumulation of 2 x 4 rows equals batches of 8 (no "
    "dropout)",
    "[trainers][trainer]") {
  const auto train = synthetic_dataset(32, 6);
  auto run = [&](int64_t batch, int64_t accum, const std::string& name) {
    auto model = tiny_lora_classifier(0, /*dropout=*/0.0);
    ScratchDir tmp(name);
    auto o = small_run(tmp / "run");
    o.num_train_epochs = 1;
    o.per_device_train_batch_size = batch;
    o.gradient_accumulation_steps = accum;
    o.group_by_length = false;
    trainers::Trainer(model, train, nullptr, o, "fp", 0).train();
    std::vector<at::Tensor> out;
    for (const auto& [name_, p] : model.trainable_parameters())
      out.push_back(p.detach().clone());
    return out;
  };
  // The same rows meet in the same optimizer step only if the plans agree:
  // batches of 4 taken in pairs are the batches of 8 of the same shuffle.
  const auto a = run(8, 1, "accum_a");
  const auto b = run(4, 2, "accum_b");
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>());
  CHECK(worst < 1e-5);
}
