// AdamW as the trainer builds it: which parameters take weight decay
// (against transformers' Trainer.get_decay_parameter_names on real model
// names), five steps against torch.optim.AdamW with transformers' grouping
// and linear schedule (tests/fixtures/make_trainer_refs.py), refusals, and
// the optimizer state surviving save -> load bit for bit (what resuming from
// a checkpoint relies on).

#include <torch/torch.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "models/checkpoint/safetensors.h"
#include "tests/test_paths.h"
#include "tests/test_tensors.h"
#include "trainers/lr_schedule.h"
#include "trainers/optimizer.h"

using nlohmann::json;
namespace trainers = peftcpp::trainers;
using NamedParameters = std::vector<std::pair<std::string, at::Tensor>>;

namespace {

std::filesystem::path ref_path(const std::string& name) {
  return peftcpp::testing::fixture_dir() / "trainer_refs" / name;
}

json load_ref(const std::string& name) {
  std::ifstream in(ref_path(name));
  INFO("reference file " << ref_path(name).string()
                         << " (written by make_trainer_refs.py)");
  REQUIRE(in.good());
  return json::parse(in);
}

// Fresh trainable leaves with the given shapes and seed.
NamedParameters make_parameters(const std::vector<std::string>& names,
                                uint64_t seed) {
  torch::manual_seed(seed);
  NamedParameters out;
  int64_t i = 0;
  for (const auto& name : names) {
    out.emplace_back(name, torch::randn({3 + i % 3, 4}).requires_grad_(true));
    ++i;
  }
  return out;
}

// One step with the same deterministic gradients for every caller.
void step_with_gradients(torch::optim::Optimizer& optimizer,
                         const NamedParameters& params, int64_t step) {
  for (size_t i = 0; i < params.size(); ++i) {
    torch::manual_seed(1000 + 10 * step + static_cast<int64_t>(i));
    params[i].second.mutable_grad() = torch::randn(params[i].second.sizes());
  }
  optimizer.step();
}

const std::vector<std::string> kNames = {
    "base_model.model.bert.encoder.layer.0.attention.self.query.lora_A."
    "default.weight",
    "base_model.model.bert.encoder.layer.0.attention.self.query.lora_B."
    "default.weight",
    "base_model.model.bert.encoder.layer.0.output.LayerNorm.weight",
    "base_model.model.classifier.modules_to_save.default.weight",
    "base_model.model.classifier.modules_to_save.default.bias",
};

}  // namespace

TEST_CASE(
    "weight decay follows transformers' rule on the names of real PEFT, "
    "GPT-2 and Llama models",
    "[trainers][optimizer]") {
  const json ref = load_ref("decay_names.json");
  size_t checked = 0;
  size_t no_decay = 0;
  for (const auto& [model, params] : ref.items()) {
    for (const json& p : params) {
      const std::string name = p.at("name");
      INFO(model << ": " << name);
      CHECK(trainers::is_no_decay_parameter(name) ==
            !p.at("decay").get<bool>());
      no_decay += p.at("decay").get<bool>() ? 0 : 1;
      ++checked;
    }
  }
  CHECK(checked > 300);
  CHECK(no_decay > 100);
  std::printf("decay rule: %zu names of %zu models, %zu without decay\n",
              checked, ref.size(), no_decay);
}

TEST_CASE(
    "AdapterHub's LayerNorms take no decay (transformers finds them by module "
    "type; the names are those the adapters package registers)",
    "[trainers][optimizer]") {
  const std::string slot = "bert.encoder.layer.0.output.adapters.bottleneck.";
  CHECK(trainers::is_no_decay_parameter(slot + "adapter_norm_before.weight"));
  CHECK(trainers::is_no_decay_parameter(slot + "adapter_norm_after.weight"));
  CHECK(trainers::is_no_decay_parameter(slot + "adapter_up.bias"));
  CHECK_FALSE(trainers::is_no_decay_parameter(slot + "adapter_down.0.weight"));
  CHECK_FALSE(trainers::is_no_decay_parameter(slot + "adapter_up.weight"));
  CHECK_FALSE(trainers::is_no_decay_parameter(slot + "scaling"));
  CHECK_FALSE(trainers::is_no_decay_parameter(slot + "gate.weight"));
  // Look-alikes that are not norms keep their decay.
  CHECK_FALSE(trainers::is_no_decay_parameter(
      "base_model.model.bert.encoder.layer.0.attention.self.query."
      "lora_magnitude_vector.default.weight"));
  CHECK_FALSE(trainers::is_no_decay_parameter(
      "prompt_encoder.default.embedding.weight"));
  CHECK_FALSE(trainers::is_no_decay_parameter("encoder.normal_proj.weight"));
}

TEST_CASE(
    "five AdamW steps with transformers' groups and linear schedule equal "
    "torch.optim.AdamW",
    "[trainers][optimizer]") {
  const json ref = load_ref("adamw.json");
  const auto file =
      peftcpp::models::SafetensorsFile::open(ref_path("adamw.safetensors"));
  const auto names = ref.at("names").get<std::vector<std::string>>();
  const auto decay = ref.at("decay").get<std::vector<bool>>();
  NamedParameters params;
  for (const auto& name : names)
    params.emplace_back(
        name, file->tensor("init/" + name).clone().requires_grad_(true));

  trainers::AdamWSettings settings;
  settings.learning_rate = ref.at("peak_lr");
  settings.weight_decay = ref.at("weight_decay");
  settings.adam_beta1 = ref.at("betas")[0];
  settings.adam_beta2 = ref.at("betas")[1];
  settings.adam_epsilon = ref.at("eps");
  auto optimizer = trainers::make_adamw(params, settings);

  // Groups: decay first, each in the given order, as transformers makes them.
  REQUIRE(optimizer->param_groups().size() == 2);
  std::vector<const void*> expected[2];
  for (size_t i = 0; i < params.size(); ++i)
    expected[decay[i] ? 0 : 1].push_back(
        params[i].second.unsafeGetTensorImpl());
  for (size_t g = 0; g < 2; ++g) {
    std::vector<const void*> got;
    for (const auto& p : optimizer->param_groups()[g].params())
      got.push_back(p.unsafeGetTensorImpl());
    CHECK(got == expected[g]);
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(
        optimizer->param_groups()[g].options());
    CHECK(options.weight_decay() == (g == 0 ? settings.weight_decay : 0.0));
  }

  const int64_t warmup = ref.at("warmup_steps");
  const int64_t total = ref.at("total_steps");
  const auto lrs = ref.at("lrs").get<std::vector<double>>();
  double max_dev = 0.0;
  for (int64_t step = 0; step < total; ++step) {
    const double lr =
        settings.learning_rate *
        trainers::lr_factor(trainers::LrSchedule::kLinear, step, warmup, total);
    CHECK(lr == Approx(lrs[step]).margin(1e-18));
    trainers::set_learning_rate(*optimizer, lr);
    const std::string s = std::to_string(step);
    for (auto& [name, p] : params)
      p.mutable_grad() = file->tensor("grad/" + s + "/" + name).clone();
    optimizer->step();
    for (const auto& [name, p] : params) {
      INFO("step " << step << " " << name);
      const double dev = peftcpp::testing::max_abs_diff(
          p.detach(), file->tensor("after/" + s + "/" + name));
      CHECK(dev <= 1e-6);
      max_dev = std::max(max_dev, dev);
    }
  }
  std::printf("AdamW: %zu parameters x %lld steps, max |d| vs torch %.3g\n",
              params.size(), static_cast<long long>(total), max_dev);
}

TEST_CASE("make_adamw refuses what it cannot train, naming the parameter",
          "[trainers][optimizer]") {
  trainers::AdamWSettings settings;
  CHECK_THROWS_WITH(
      trainers::make_adamw({}, settings),
      Catch::Contains("[make_adamw] expected at least one trainable "
                      "parameter, got none") &&
          Catch::Contains("hint:"));

  NamedParameters params = make_parameters(kNames, 1);
  params[2].second.requires_grad_(false);
  CHECK_THROWS_WITH(
      trainers::make_adamw(params, settings),
      Catch::Contains("expected trainable parameters (requires_grad), got "
                      "frozen parameter \"" +
                      kNames[2] + "\""));

  params = make_parameters(kNames, 1);
  params.emplace_back("copy", params[0].second);
  CHECK_THROWS_WITH(trainers::make_adamw(params, settings),
                    Catch::Contains("\"copy\" is a tensor already listed"));

  params = make_parameters(kNames, 1);
  params.emplace_back(kNames[0], torch::zeros({2}).requires_grad_(true));
  CHECK_THROWS_WITH(trainers::make_adamw(params, settings),
                    Catch::Contains("expected unique parameter names"));

  params = make_parameters(kNames, 1);
  params[1].second = params[1].second * 2;  // not a leaf
  CHECK_THROWS_WITH(trainers::make_adamw(params, settings),
                    Catch::Contains("expected leaf tensors"));

  params = make_parameters(kNames, 1);
  params[1].second = at::Tensor();
  CHECK_THROWS_WITH(trainers::make_adamw(params, settings),
                    Catch::Contains("an undefined tensor for"));

  params = make_parameters(kNames, 1);
  trainers::AdamWSettings bad;
  bad.adam_beta2 = 1.0;
  CHECK_THROWS_WITH(
      trainers::make_adamw(params, bad),
      Catch::Contains("[make_adamw] expected adam_beta2 in [0, 1)"));
  bad = {};
  bad.learning_rate = -1e-3;
  CHECK_THROWS_AS(trainers::make_adamw(params, bad), std::invalid_argument);
  bad = {};
  bad.weight_decay = -0.1;
  CHECK_THROWS_AS(trainers::make_adamw(params, bad), std::invalid_argument);
}

TEST_CASE("set_learning_rate sets every group, and only valid rates",
          "[trainers][optimizer]") {
  NamedParameters params = make_parameters(kNames, 2);
  auto optimizer = trainers::make_adamw(params, {});
  trainers::set_learning_rate(*optimizer, 3e-4);
  for (const auto& group : optimizer->param_groups())
    CHECK(group.options().get_lr() == 3e-4);
  CHECK_THROWS_WITH(trainers::set_learning_rate(*optimizer, -1.0),
                    Catch::Contains("[set_learning_rate] expected a learning "
                                    "rate >= 0 and finite"));
  CHECK_THROWS_AS(trainers::set_learning_rate(*optimizer, std::nan("")),
                  std::invalid_argument);
}

TEST_CASE(
    "optimizer state saved and loaded into a fresh optimizer continues bit "
    "for bit",
    "[trainers][optimizer]") {
  // All of kNames (both groups filled), and only decayed parameters (an
  // empty no-decay group).
  for (const size_t count : {kNames.size(), size_t{2}}) {
    const std::vector<std::string> names(kNames.begin(),
                                         kNames.begin() + count);
    INFO(count << " parameters");
    trainers::AdamWSettings settings;
    settings.learning_rate = 1e-2;
    settings.weight_decay = 0.01;
    NamedParameters a = make_parameters(names, 3);
    auto opt_a = trainers::make_adamw(a, settings);
    for (int64_t step = 0; step < 3; ++step)
      step_with_gradients(*opt_a, a, step);
    trainers::set_learning_rate(*opt_a, 7e-3);  // mid-schedule

    std::stringstream saved;
    trainers::save_optimizer_state(*opt_a, saved);
    const std::string bytes = saved.str();

    // A fresh model at the same weights, a fresh optimizer with another
    // learning rate: the loaded state brings moments, steps, group options.
    NamedParameters b;
    NamedParameters c;
    for (const auto& [name, p] : a) {
      b.emplace_back(name, p.detach().clone().requires_grad_(true));
      c.emplace_back(name, p.detach().clone().requires_grad_(true));
    }
    trainers::AdamWSettings other = settings;
    other.learning_rate = 0.5;
    auto opt_b = trainers::make_adamw(b, other);
    trainers::load_optimizer_state(*opt_b, saved);
    for (const auto& group : opt_b->param_groups())
      CHECK(group.options().get_lr() == 7e-3);
    // The same bytes are what torch::save writes: torch::load reads them.
    auto opt_c = trainers::make_adamw(c, other);
    std::istringstream for_torch(bytes);
    torch::load(*opt_c, for_torch);

    for (int64_t step = 3; step < 6; ++step) {
      step_with_gradients(*opt_a, a, step);
      step_with_gradients(*opt_b, b, step);
      step_with_gradients(*opt_c, c, step);
    }
    for (size_t i = 0; i < a.size(); ++i) {
      INFO(a[i].first);
      CHECK(torch::equal(a[i].second, b[i].second));
      CHECK(torch::equal(a[i].second, c[i].second));
    }
  }
}

TEST_CASE(
    "a state saved for other parameters is refused and leaves the optimizer "
    "as it was",
    "[trainers][optimizer]") {
  NamedParameters a = make_parameters(kNames, 4);
  auto opt_a = trainers::make_adamw(a, {});
  step_with_gradients(*opt_a, a, 0);
  std::stringstream saved;
  trainers::save_optimizer_state(*opt_a, saved);
  const std::string bytes = saved.str();

  // Same group sizes, other shapes: LibTorch would accept it and fail in
  // step(); we refuse at load.
  NamedParameters wider;
  for (const auto& [name, p] : a)
    wider.emplace_back(name, torch::zeros({p.size(0), 7}).requires_grad_(true));
  auto opt_w = trainers::make_adamw(wider, {});
  trainers::set_learning_rate(*opt_w, 1e-4);
  std::stringstream in_w(bytes);
  CHECK_THROWS_WITH(trainers::load_optimizer_state(*opt_w, in_w),
                    Catch::Contains("[load_optimizer_state] expected moments "
                                    "shaped like parameter") &&
                        Catch::Contains("hint:"));
  CHECK(opt_w->state().empty());
  for (const auto& group : opt_w->param_groups())
    CHECK(group.options().get_lr() == 1e-4);
  step_with_gradients(*opt_w, wider, 0);  // still usable

  // Another group size.
  NamedParameters fewer(a.begin(), a.begin() + 2);
  for (auto& [name, p] : fewer)
    p = p.detach().clone().requires_grad_(true);
  auto opt_f = trainers::make_adamw(fewer, {});
  std::stringstream in_f(bytes);
  CHECK_THROWS_WITH(trainers::load_optimizer_state(*opt_f, in_f),
                    Catch::Contains("[load_optimizer_state] expected an "
                                    "optimizer state saved for parameter "
                                    "groups of sizes [2, 0]"));
  CHECK(opt_f->state().empty());

  // Not an archive at all.
  std::stringstream junk("not a torch archive");
  CHECK_THROWS_AS(trainers::load_optimizer_state(*opt_f, junk),
                  std::runtime_error);
}
