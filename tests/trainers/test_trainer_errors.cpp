// The training loop refuses what would corrupt a run: a non-finite loss, a
// checkpoint of another configuration, an output folder of another run; and
// it honours the options that change when it stops.

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include "tests/test_paths.h"
#include "tests/trainers/trainer_fixtures.h"
#include "trainers/checkpoint.h"
#include "trainers/trainer.h"

namespace fs = std::filesystem;
using namespace peftcpp;
using peftcpp::testing::ScratchDir;
using peftcpp::testing::synthetic_dataset;
using peftcpp::testing::tiny_lora_classifier;

namespace {
trainers::TrainerOptions quick(const fs::path& out) {
  trainers::TrainerOptions o;
  o.output_dir = out;
  o.num_train_epochs = 2;
  o.per_device_train_batch_size = 8;
  o.adamw.learning_rate = 1e-2;
  o.metrics = {data::Metric::kAccuracy};
  o.show_progress = false;
  o.save_steps = 2;
  return o;
}
}  // namespace

TEST_CASE(
    "a non-finite loss stops the run with a clear message and leaves "
    "no adapter",
    "[trainers][errors]") {
  const auto train = synthetic_dataset(32, 1);
  auto model = tiny_lora_classifier(0);
  ScratchDir o_tmp("nan_stop");
  auto o = quick(o_tmp / "run");
  o.adamw.learning_rate = 1e30;  // the first update makes the weights inf
  o.max_grad_norm = 0.0;
  try {
    trainers::Trainer(model, train, nullptr, o, "fp", 0).train();
    FAIL("expected the run to stop");
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains("[train] expected a finite loss, got"));
    CHECK_THAT(msg, Catch::Contains("no adapter was written"));
    CHECK_THAT(msg, Catch::Contains("on_non_finite_loss: skip"));
  }
  CHECK_FALSE(fs::exists(o.output_dir / "adapter"));
}

TEST_CASE("on_non_finite_loss skip drops the bad steps and finishes",
          "[trainers][errors]") {
  const auto train = synthetic_dataset(32, 1);
  auto model = tiny_lora_classifier(0);
  ScratchDir o_tmp("nan_skip");
  auto o = quick(o_tmp / "run");
  o.adamw.learning_rate = 1e30;
  o.max_grad_norm = 0.0;
  o.on_non_finite_loss = trainers::NonFiniteLoss::kSkip;
  const auto r = trainers::Trainer(model, train, nullptr, o, "fp", 0).train();
  CHECK(r.global_step == 8);
  CHECK(r.skipped_steps >= 6);  // every step after the first update
}

TEST_CASE(
    "a checkpoint written by another run configuration is refused and "
    "changes nothing",
    "[trainers][errors][resume]") {
  const auto train = synthetic_dataset(32, 1);
  ScratchDir out_dir("other_config");
  const fs::path out = out_dir.path();
  {
    auto model = tiny_lora_classifier(0);
    trainers::Trainer(model, train, nullptr, quick(out), "fingerprint-A", 0)
        .train();
  }
  auto model = tiny_lora_classifier(0);
  std::vector<at::Tensor> before;
  for (const auto& [name, p] : model.trainable_parameters())
    before.push_back(p.detach().clone());
  auto o = quick(out);
  o.resume = true;
  try {
    trainers::Trainer(model, train, nullptr, o, "fingerprint-B", 0).train();
    FAIL("expected the checkpoint to be refused");
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains("expected a checkpoint of this run "
                                    "configuration (fingerprint "
                                    "fingerprint-B)"));
    CHECK_THAT(msg, Catch::Contains("written by another configuration"));
  }
  size_t i = 0;
  for (const auto& [name, p] : model.trainable_parameters())
    CHECK(torch::equal(before[i++], p));
}

TEST_CASE("a fresh run into the output folder of an earlier run is refused",
          "[trainers][errors]") {
  const auto train = synthetic_dataset(16, 1);
  ScratchDir out_dir("stale_output");
  const fs::path out = out_dir.path();
  {
    auto model = tiny_lora_classifier(0);
    trainers::Trainer(model, train, nullptr, quick(out), "fp", 0).train();
  }
  auto model = tiny_lora_classifier(0);
  CHECK_THROWS_WITH(
      trainers::Trainer(model, train, nullptr, quick(out), "fp", 0).train(),
      Catch::Contains("expected a new or empty output_dir") &&
          Catch::Contains("--resume continues that run"));
}

TEST_CASE(
    "early stopping ends the run after `patience` evaluations without "
    "improvement",
    "[trainers]") {
  const auto train = synthetic_dataset(32, 1);
  auto model = tiny_lora_classifier(0);
  ScratchDir o_tmp("early_stop");
  auto o = quick(o_tmp / "run");
  o.num_train_epochs = 10;
  o.adamw.learning_rate = 0.0;  // nothing improves after the first eval
  o.early_stopping_patience = 2;
  o.metric_for_best_model = "loss";
  const auto r = trainers::Trainer(model, train, &train, o, "fp", 0).train();
  CHECK(r.early_stopped);
  CHECK(r.global_step == 3 * 4);  // evals after epochs 1, 2, 3
  CHECK(r.best_step == 4);
}

TEST_CASE(
    "bfloat16 autocast trains on the CPU; float16 is refused (no loss "
    "scaling yet)",
    "[trainers]") {
  const auto train = synthetic_dataset(32, 1);
  auto model = tiny_lora_classifier(0);
  ScratchDir o_tmp("bf16");
  auto o = quick(o_tmp / "run");
  o.precision = "bfloat16";
  const auto r = trainers::Trainer(model, train, &train, o, "fp", 0).train();
  CHECK(std::isfinite(r.final_train_loss));
  for (const auto& [name, p] : model.trainable_parameters())
    CHECK(p.scalar_type() == at::kFloat);  // master weights stay float32

  ScratchDir o16_tmp("fp16");

  auto o16 = quick(o16_tmp / "run");
  o16.precision = "float16";
  CHECK_THROWS_WITH(
      trainers::Trainer(model, train, nullptr, o16, "fp", 0).train(),
      Catch::Contains("float16 training needs loss scaling"));
}
