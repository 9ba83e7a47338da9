// The property matrix every PEFT method is held to (STYLE.md), on tiny
// random BERT and RoBERTa sequence classifiers:
// - the output equals the base model's at init where the method promises it;
// - one optimizer step changes only the adapter's parameters (and the head
//   copies of modules_to_save);
// - merge gives the unmerged output and unmerge restores the base weights
//   (mergeable methods);
// - with adapters disabled the output is exactly the base output;
// - save -> load into a fresh model gives identical outputs;
// - outputs are finite.
// Parity with Python PEFT lives in test_peft_parity.cpp; the error messages
// users see are checked at the end.

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <functional>

#include "models/checkpoint/safetensors.h"
#include "models/checkpoint/state_dict.h"
#include "peft/peft_model.h"
#include "tests/peft/tiny_peft_models.h"
#include "tests/test_paths.h"
#include "tests/test_tensors.h"

using namespace peftcpp;
using namespace peftcpp::peft;
using peftcpp::testing::batch;
using peftcpp::testing::max_abs_diff;
using peftcpp::testing::snapshot;
using peftcpp::testing::tiny_config;
using peftcpp::testing::tiny_model;
namespace fs = std::filesystem;

namespace {

struct Method {
  std::string name;
  std::function<AdapterConfig()> config;
  bool identity_at_init;
  bool mergeable;
};

std::vector<Method> methods() {
  std::vector<Method> out;
  auto lora = [](auto edit) {
    return [edit] {
      LoraConfig c;
      c.r = 4;
      c.lora_alpha = 8;
      edit(c);
      AdapterConfig a;
      a.method = c;
      return a;
    };
  };
  out.push_back({"LoRA", lora([](LoraConfig&) {}), true, true});
  out.push_back(
      {"rsLoRA", lora([](LoraConfig& c) { c.use_rslora = true; }), true, true});
  out.push_back(
      {"DoRA", lora([](LoraConfig& c) { c.use_dora = true; }), true, true});
  out.push_back({"LoRA gaussian on every projection", lora([](LoraConfig& c) {
                   c.init_lora_weights = LoraInit::kGaussian;
                   c.target_modules =
                       ModuleSelector::pattern(".*\\.(query|key|value|dense)");
                   c.lora_bias = true;
                 }),
                 true, true});
  out.push_back({"(IA)3",
                 [] {
                   AdapterConfig a;
                   a.method = Ia3Config{};
                   return a;
                 },
                 true, true});
  out.push_back({"prompt tuning",
                 [] {
                   PromptTuningConfig c;
                   c.num_virtual_tokens = 4;
                   AdapterConfig a;
                   a.method = c;
                   return a;
                 },
                 false, false});
  out.push_back({"P-tuning",
                 [] {
                   PromptEncoderConfig c;
                   c.num_virtual_tokens = 4;
                   c.encoder_hidden_size = 16;
                   AdapterConfig a;
                   a.method = c;
                   return a;
                 },
                 false, false});
  out.push_back({"prefix tuning",
                 [] {
                   PrefixTuningConfig c;
                   c.num_virtual_tokens = 4;
                   AdapterConfig a;
                   a.method = c;
                   return a;
                 },
                 false, false});
  out.push_back({"prefix tuning with projection",
                 [] {
                   PrefixTuningConfig c;
                   c.num_virtual_tokens = 4;
                   c.prefix_projection = true;
                   c.encoder_hidden_size = 16;
                   AdapterConfig a;
                   a.method = c;
                   return a;
                 },
                 false, false});
  for (const char* preset : {"seq_bn", "double_seq_bn", "par_bn"}) {
    const std::string p = preset;
    out.push_back({std::string("bottleneck ") + preset,
                   [p] {
                     AdapterConfig a;
                     a.method = BottleneckConfig::preset(p);
                     return a;
                   },
                   p == "par_bn", false});
  }
  return out;
}

// Moves every trainable parameter away from its init (LoRA's B = 0 would
// hide merge errors); DoRA magnitudes stay positive.
void perturb_trainable(PeftModelImpl& model) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(11);
  for (auto& p : model.named_parameters()) {
    if (!p.value().requires_grad())
      continue;
    if (p.key().find("lora_magnitude_vector") != std::string::npos)
      p.value().mul_(1 + 0.1 * torch::rand_like(p.value()));
    else
      p.value().add_(0.1 * torch::randn_like(p.value()));
  }
}

double relative_diff(const at::Tensor& a, const at::Tensor& b) {
  return max_abs_diff(a, b) / std::max(1e-12, b.abs().max().item<double>());
}

}  // namespace

TEST_CASE("every method keeps the properties it promises, on BERT and RoBERTa",
          "[peft][properties]") {
  for (const std::string family : {"bert", "roberta"}) {
    const models::EncoderInputs in = batch(family);
    for (const Method& method : methods()) {
      SECTION(family + ": " + method.name) {
        PeftModel model(tiny_model(family, 1));
        model->eval();
        at::Tensor base;
        {
          torch::NoGradGuard no_grad;
          base = model->forward(in);
        }
        model->add_adapter("default", method.config());
        torch::NoGradGuard no_grad;

        // At init.
        const at::Tensor at_init = model->forward(in);
        CHECK(at_init.isfinite().all().item<bool>());
        if (method.identity_at_init)
          CHECK(max_abs_diff(at_init, base) <= 1e-6);

        // One optimizer step changes adapter parameters only.
        {
          torch::GradMode::set_enabled(true);
          const auto before = snapshot(*model);
          std::set<std::string> trainable;
          std::vector<at::Tensor> params;
          for (const auto& p : model->named_parameters()) {
            params.push_back(p.value());
            if (p.value().requires_grad())
              trainable.insert(p.key());
          }
          REQUIRE(!trainable.empty());
          torch::optim::SGD sgd(params, torch::optim::SGDOptions(0.5));
          model->train();
          const at::Tensor logits = model->forward(in);
          torch::nn::functional::cross_entropy(logits, torch::tensor({0, 1, 2}))
              .backward();
          sgd.step();
          model->eval();
          torch::GradMode::set_enabled(false);
          int changed = 0;
          for (const auto& p : model->named_parameters()) {
            const bool moved = !torch::equal(before.at(p.key()), p.value());
            if (moved && !trainable.count(p.key()))
              FAIL("a frozen parameter changed: " << p.key());
            changed += moved;
          }
          CHECK(changed > 0);
        }

        perturb_trainable(*model);
        const at::Tensor adapted = model->forward(in);
        CHECK(adapted.isfinite().all().item<bool>());
        CHECK(max_abs_diff(adapted, base) > 1e-4);  // the adapter does act

        // Disabled: exactly the base.
        {
          auto off = model->disable_adapters();
          CHECK(max_abs_diff(model->forward(in), base) == 0.0);
        }
        CHECK(max_abs_diff(model->forward(in), adapted) == 0.0);

        // Merge / unmerge.
        if (method.mergeable) {
          const auto weights = snapshot(model->base().module());
          model->merge_adapter(/*safe=*/true);
          CHECK(model->merged());
          CHECK(max_abs_diff(model->forward(in), adapted) <= 1e-5);
          {
            auto off = model->disable_adapters();
            CHECK(max_abs_diff(model->forward(in), base) <= 1e-5);
          }
          CHECK(model->merged());
          model->unmerge_adapter();
          for (const auto& p : model->base().module().named_parameters()) {
            if (weights.count(p.key()))
              CHECK(relative_diff(p.value(), weights.at(p.key())) <= 1e-6);
          }
          CHECK(max_abs_diff(model->forward(in), adapted) <= 1e-5);
        } else {
          CHECK_THROWS_AS(model->merge_adapter(), std::invalid_argument);
        }

        // Save -> load into a fresh copy of the base.
        testing::ScratchDir dir("peft_properties");
        model->save_adapter(dir.path() / "adapter");
        PeftModel fresh(tiny_model(family, 1));
        fresh->eval();
        fresh->load_adapter(dir.path() / "adapter", "default");
        CHECK(max_abs_diff(fresh->forward(in), adapted) <= 1e-6);
      }
    }
  }
}

TEST_CASE(
    "merge_and_unload returns the plain model computing the adapted output",
    "[peft][properties]") {
  const models::EncoderInputs in = batch("roberta");
  PeftModel model(tiny_model("roberta", 2));
  model->eval();
  AdapterConfig config;
  LoraConfig lora;
  lora.init_lora_weights = LoraInit::kNone;
  config.method = lora;
  model->add_adapter("default", config);
  torch::NoGradGuard no_grad;
  const at::Tensor adapted = model->forward(in);
  models::LoadedEncoder plain = model->merge_and_unload();
  CHECK(model->adapter_names().empty());
  for (const auto& p : plain.module().named_parameters()) {
    INFO(p.key());
    CHECK(p.key().find("lora_") == std::string::npos);
    CHECK(p.key().find("modules_to_save") == std::string::npos);
  }
  CHECK(max_abs_diff(plain.classifier->forward(in), adapted) <= 1e-5);
}

TEST_CASE("several named adapters switch, disable and delete independently",
          "[peft][properties]") {
  const models::EncoderInputs in = batch("bert");
  PeftModel model(tiny_model("bert", 3));
  model->eval();
  torch::NoGradGuard no_grad;
  const at::Tensor base = model->forward(in);
  AdapterConfig lora;
  LoraConfig l;
  l.init_lora_weights = LoraInit::kNone;
  lora.method = l;
  AdapterConfig ia3;
  Ia3Config i;
  i.init_ia3_weights = false;
  ia3.method = i;
  model->add_adapter("first", lora);
  model->add_adapter("second", ia3);
  CHECK(model->active_adapter() == "first");
  const at::Tensor first = model->forward(in);
  model->set_adapter("second");
  const at::Tensor second = model->forward(in);
  CHECK(max_abs_diff(first, second) > 1e-4);
  CHECK(max_abs_diff(first, base) > 1e-4);

  // Only the active adapter trains.
  for (const auto& p : model->named_parameters()) {
    INFO(p.key());
    const bool first_param = p.key().find(".first") != std::string::npos;
    if (first_param)
      CHECK_FALSE(p.value().requires_grad());
  }
  model->set_adapter("first");
  CHECK(max_abs_diff(model->forward(in), first) == 0.0);
  model->delete_adapter("second");
  CHECK(model->adapter_names() == std::vector<std::string>{"first"});
  for (const auto& p : model->named_parameters())
    CHECK(p.key().find(".second") == std::string::npos);
  CHECK(max_abs_diff(model->forward(in), first) == 0.0);
}

TEST_CASE("the trainable-parameter report counts as PEFT does",
          "[peft][properties]") {
  PeftModel model(tiny_model("bert", 4));
  const ParameterCount base = model->count_parameters();
  CHECK(base.trainable == 0);
  AdapterConfig config;
  LoraConfig lora;
  lora.r = 4;
  config.method = lora;
  model->add_adapter("default", config);
  const ParameterCount c = model->count_parameters();
  // Two layers x (query + value) x (A [4, 32] + B [32, 4]), plus the head
  // copy (classifier [3, 32] + bias [3]).
  const int64_t lora_params = 2 * 2 * (4 * 32 + 32 * 4);
  const int64_t head = 3 * 32 + 3;
  CHECK(c.trainable == lora_params + head);
  CHECK(c.total == base.total + lora_params + head);
  const std::string report = model->trainable_parameters_report();
  CHECK_THAT(report,
             Catch::StartsWith("trainable params: 1,123 || all params: "));
  CHECK_THAT(report, Catch::Contains("|| trainable%: "));
}

// --- regressions found in review
// ------------------------------------------------

TEST_CASE("an adapter named like a layer index saves PEFT's keys",
          "[peft][properties]") {
  PeftModel model(tiny_model("bert", 12));
  AdapterConfig ia3;
  ia3.method = Ia3Config{};
  model->add_adapter("1", ia3);
  AdapterConfig dora;
  LoraConfig l;
  l.use_dora = true;
  dora.method = l;
  model->add_adapter("0", dora);
  testing::ScratchDir dir("peft_names");
  model->save_adapter(dir / "ia3", "1");
  model->save_adapter(dir / "dora", "0");
  const auto ia3_keys =
      models::load_checkpoint(dir / "ia3" / "adapter_model.safetensors");
  CHECK(ia3_keys.count(
      "base_model.model.bert.encoder.layer.1.attention.self.key.ia3_l"));
  const auto dora_keys =
      models::load_checkpoint(dir / "dora" / "adapter_model.safetensors");
  CHECK(
      dora_keys.count("base_model.model.bert.encoder.layer.0.attention.self."
                      "value.lora_magnitude_vector"));
  PeftModel fresh(tiny_model("bert", 12));
  fresh->load_adapter(dir / "ia3", "1");
  fresh->load_adapter(dir / "dora", "0");
}

TEST_CASE(
    "a refused load leaves the active adapter, its merge and the base biases "
    "as they were",
    "[peft][properties]") {
  const models::EncoderInputs in = batch("bert");
  testing::ScratchDir dir("peft_refused_load");
  {
    // An adapter that trains every bias, saved with one tensor of a wrong
    // shape at the end of the file's order.
    PeftModel donor(tiny_model("bert", 13));
    AdapterConfig config;
    LoraConfig l;
    l.bias = "all";
    config.method = l;
    donor->add_adapter("default", config);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : donor->named_parameters())
        if (p.value().requires_grad())
          p.value().add_(1.0);
    }
    donor->save_adapter(dir.path());
    auto tensors = models::load_checkpoint(dir / "adapter_model.safetensors");
    const std::string broken =
        "base_model.model.bert.encoder.layer.1.attention.self.value.lora_B."
        "weight";
    tensors[broken] = torch::zeros({5, 5});
    std::vector<std::pair<std::string, at::Tensor>> kept(tensors.begin(),
                                                         tensors.end());
    models::save_safetensors(dir / "adapter_model.safetensors", kept);
  }
  PeftModel model(tiny_model("bert", 14));
  model->eval();
  AdapterConfig lora;
  LoraConfig l;
  l.init_lora_weights = LoraInit::kNone;
  lora.method = l;
  model->add_adapter("a", lora);
  model->merge_adapter();
  torch::NoGradGuard no_grad;
  const auto before = snapshot(model->base().module());
  const at::Tensor merged_out = model->forward(in);
  REQUIRE_THROWS_WITH(model->load_adapter(dir.path(), "b"),
                      Catch::Contains("maybe wrong base model"));
  CHECK(model->adapter_names() == std::vector<std::string>{"a"});
  CHECK(model->active_adapter() == "a");
  CHECK(model->merged());
  for (const auto& p : model->base().module().named_parameters()) {
    if (before.count(p.key())) {
      INFO(p.key());
      CHECK(torch::equal(p.value(), before.at(p.key())));
    }
  }
  CHECK(max_abs_diff(model->forward(in), merged_out) == 0.0);
}

TEST_CASE("disabled scopes nest and refuse merging inside",
          "[peft][properties]") {
  const models::EncoderInputs in = batch("roberta");
  PeftModel model(tiny_model("roberta", 15));
  model->eval();
  torch::NoGradGuard no_grad;
  const at::Tensor base = model->forward(in);
  AdapterConfig config;
  LoraConfig l;
  l.init_lora_weights = LoraInit::kNone;
  config.method = l;
  model->add_adapter("default", config);
  const at::Tensor adapted = model->forward(in);
  model->merge_adapter();
  {
    auto outer = model->disable_adapters();
    {
      auto inner = model->disable_adapters();
      CHECK(max_abs_diff(model->forward(in), base) <= 1e-5);
    }
    CHECK(max_abs_diff(model->forward(in), base) <= 1e-5);  // still off
    CHECK_THROWS_WITH(model->merge_adapter(),
                      Catch::Contains("disable_adapters() scope"));
  }
  CHECK(model->merged());
  CHECK(max_abs_diff(model->forward(in), adapted) <= 1e-5);
}

TEST_CASE(
    "(IA)3 with explicit targets still gets the default feed-forward modules",
    "[peft][properties]") {
  PeftModel model(tiny_model("bert", 16));
  AdapterConfig config;
  Ia3Config c;
  c.target_modules = ModuleSelector::list({"key", "value", "output.dense"});
  config.method = c;
  model->add_adapter("default", config);
  int seen = 0;
  for (const auto& p : model->named_parameters()) {
    if (p.key() ==
        "base_model.bert.encoder.layer.0.output.dense.ia3_l.default") {
      CHECK(p.value().sizes() == std::vector<int64_t>{1, 37});  // input scaling
      ++seen;
    }
    if (p.key() ==
        "base_model.bert.encoder.layer.0.attention.self.key.ia3_l.default") {
      CHECK(p.value().sizes() == std::vector<int64_t>{32, 1});
      ++seen;
    }
  }
  CHECK(seen == 2);
  const auto& saved =
      std::get<Ia3Config>(model->adapter_config("default").method);
  REQUIRE(saved.feedforward_modules.has_value());
  CHECK(saved.feedforward_modules->names ==
        std::vector<std::string>{"output.dense"});
}

TEST_CASE("adapters on a bfloat16 base are float32 and return the base dtype",
          "[peft][properties]") {
  models::LoadedEncoder m = tiny_model("bert", 17);
  m.classifier->to(torch::kBFloat16);
  PeftModel model(std::move(m));
  model->eval();
  AdapterConfig config;
  LoraConfig l;
  l.use_dora = true;
  config.method = l;
  model->add_adapter("default", config);
  for (const auto& p : model->named_parameters()) {
    if (p.key().find(".lora_") != std::string::npos) {
      INFO(p.key());
      CHECK(p.value().scalar_type() == torch::kFloat);
    }
  }
  torch::NoGradGuard no_grad;
  const at::Tensor logits = model->forward(batch("bert"));
  CHECK(logits.scalar_type() == torch::kBFloat16);
  CHECK(logits.isfinite().all().item<bool>());
}
