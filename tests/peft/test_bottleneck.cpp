// Bottleneck adapters against AdapterHub (`adapters` 1.3.0), both ways, on
// tiny random BERT and RoBERTa sequence classifiers:
// - adapters saved by AdapterHub (seq_bn, double_seq_bn, par_bn; random
//   non-zero weights; safetensors and .bin) load here and give AdapterHub's
//   logits and every hidden state (max |delta| <= 1e-5);
// - folders written here are byte for byte AdapterHub's, and folders of
//   other flag combinations (ln_before/ln_after, gating, learned and channel
//   scaling, leave_out, per-layer reduction factors, parallel without the
//   residual LayerNorm) load in AdapterHub with our logits
//   (tests/fixtures/check_bottleneck_adapter.py);
// - disabled or removed adapters give exactly the base model.
// Training-only noise and refused configs: test_bottleneck_units.cpp.
// References: tests/fixtures/bottleneck_reference.py, run by generate_all.py
// with the adapters venv into <fixtures>/bottleneck.

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "models/checkpoint/safetensors.h"
#include "models/checkpoint/state_dict.h"
#include "models/encoder/load_encoder.h"
#include "peft/bottleneck.h"
#include "tests/peft/bottleneck_fixtures.h"
#include "tests/test_paths.h"
#include "tests/test_tensors.h"

using namespace peftcpp;
using namespace peftcpp::peft;
using peftcpp::testing::max_abs_diff;
namespace fs = std::filesystem;

using namespace peftcpp::testing::bottleneck;

TEST_CASE(
    "AdapterHub's bottleneck adapters give AdapterHub's logits and "
    "hidden states",
    "[peft][bottleneck]") {
  for (const auto& model : kModels) {
    const auto in = inputs_of(model);
    for (const auto& cfg : kConfigs) {
      const fs::path dir = bn_fixtures() / model / cfg;
      const auto expected =
          models::load_checkpoint(dir / "expected.safetensors");
      for (const std::string sub : {"adapter_safetensors", "adapter"}) {
        CAPTURE(model, cfg, sub);
        Base b = load_base(model);
        const at::Tensor base_logits = logits_of(b, in);
        AdapterHubFolder folder = read_adapterhub_folder(dir / sub);
        CHECK(folder.name == "a");
        CHECK(folder.config.architecture == cfg);
        CHECK(folder.model_class == model_class(b));
        CHECK(folder.id2label ==
              std::vector<std::string>{"LABEL_0", "LABEL_1", "LABEL_2"});
        // The .bin folder loads under another name (AdapterHub's load_as).
        const std::string name = sub == "adapter" ? "renamed" : "a";
        auto adapter = add_bottleneck(b.ctx, name, folder.config);
        const auto used = adapter->load_saved(folder.adapter_weights, "", sub);
        CHECK(std::set<std::string>(used.begin(), used.end()).size() ==
              folder.adapter_weights.size());
        adapter->set_enabled(true);

        const double d_logits =
            max_abs_diff(logits_of(b, in), expected.at("logits"));
        const auto hidden = hidden_states_of(b, in);
        const at::Tensor ref = expected.at("hidden_states");
        REQUIRE(static_cast<int64_t>(hidden.size()) == ref.size(0));
        double d_hidden = 0;
        for (size_t i = 0; i < hidden.size(); ++i)
          d_hidden = std::max(d_hidden, max_abs_diff(hidden[i], ref[i]));
        std::printf("[bottleneck] %s %s %s: logits %.3g, hidden %.3g\n",
                    model.c_str(), cfg.c_str(), sub.c_str(), d_logits,
                    d_hidden);
        CHECK(d_logits <= 1e-5);
        CHECK(d_hidden <= 1e-5);
        // The adapter moves the logits far more than the tolerance.
        CHECK(max_abs_diff(logits_of(b, in), base_logits) > 1e-3);

        // Disabled: exactly the base model, which is AdapterHub's base.
        adapter->set_enabled(false);
        CHECK(torch::equal(logits_of(b, in), base_logits));
        CHECK(max_abs_diff(base_logits, expected.at("base_logits")) <= 1e-5);
        adapter->remove();
        CHECK(torch::equal(logits_of(b, in), base_logits));
      }
    }
  }
}

TEST_CASE(
    "A new bottleneck adapter has AdapterHub's parameter names and shapes "
    "and initialisation",
    "[peft][bottleneck]") {
  const auto in = inputs_of("bert");
  for (const auto& cfg : kConfigs) {
    CAPTURE(cfg);
    Base b = load_base("bert");
    const at::Tensor base_logits = logits_of(b, in);
    const auto params_before = b.loaded.module().named_parameters().size();
    BottleneckConfig config = BottleneckConfig::preset(cfg);
    auto adapter = add_bottleneck(b.ctx, "a", config);

    // Same keys and shapes as AdapterHub's file for this preset.
    const auto saved = read_adapterhub_folder(bn_fixtures() / "bert" / cfg /
                                              "adapter_safetensors")
                           .adapter_weights;
    const TensorMap ours = adapter->state_dict_to_save("ignored");
    REQUIRE(sorted_keys(ours) == sorted_keys(saved));
    for (const auto& [key, t] : ours) {
      CAPTURE(key);
      CHECK(t.sizes() == saved.at(key).sizes());
    }
    // named_parameters() are the model's own, relative to the root.
    const auto model_params = b.loaded.module().named_parameters();
    CHECK(model_params.size() == params_before + ours.size());
    for (const auto& [name, t] : adapter->named_parameters()) {
      CAPTURE(name);
      REQUIRE(model_params.find(name) != nullptr);
      CHECK(model_params[name].is_same(t));
    }

    adapter->set_enabled(true);
    if (cfg == "par_bn") {
      // mam_adapter: up-projection and biases zero, so exactly the base.
      CHECK(torch::equal(logits_of(b, in), base_logits));
      for (const auto& [key, t] : ours) {
        if (key.find("adapter_up") != std::string::npos ||
            key.find("bias") != std::string::npos)
          CHECK(torch::count_nonzero(t).item<int64_t>() == 0);
      }
    } else {
      // bert: weights N(0, 0.02), biases 0; not the base model at init.
      for (const auto& [key, t] : ours) {
        CAPTURE(key);
        if (key.find("bias") != std::string::npos) {
          CHECK(torch::count_nonzero(t).item<int64_t>() == 0);
        } else {
          CHECK(t.std().item<double>() > 0.01);
          CHECK(t.std().item<double>() < 0.04);
        }
      }
      CHECK_FALSE(torch::equal(logits_of(b, in), base_logits));
    }
    // Removing the last adapter empties the slots.
    adapter->remove();
    CHECK(adapter->named_parameters().empty());
    CHECK(b.loaded.module().named_parameters().size() == params_before);
    for (const auto& item : b.loaded.module().named_modules()) {
      CAPTURE(item.key());
      CHECK(item.key().find("adapters") == std::string::npos);
    }
  }
}

TEST_CASE(
    "Several named bottleneck adapters share the slots and only "
    "enabled ones run",
    "[peft][bottleneck]") {
  const auto in = inputs_of("bert");
  const fs::path dir = bn_fixtures() / "bert";
  const auto expected =
      models::load_checkpoint(dir / "seq_bn" / "expected.safetensors");
  Base b = load_base("bert");
  const at::Tensor base_logits = logits_of(b, in);

  auto seq = read_adapterhub_folder(dir / "seq_bn" / "adapter_safetensors");
  auto dbl =
      read_adapterhub_folder(dir / "double_seq_bn" / "adapter_safetensors");
  auto first = add_bottleneck(b.ctx, "first", seq.config);
  first->load_saved(seq.adapter_weights, "", "seq_bn");
  auto second = add_bottleneck(b.ctx, "second", dbl.config);
  second->load_saved(dbl.adapter_weights, "", "double_seq_bn");
  const auto params = b.loaded.module().named_parameters();
  CHECK(params.find("bert.encoder.layer.0.output.adapters.first.adapter_"
                    "down.0.weight") != nullptr);
  CHECK(params.find("bert.encoder.layer.1.attention.output.adapters.second."
                    "adapter_up.bias") != nullptr);

  CHECK(torch::equal(logits_of(b, in), base_logits));  // none enabled
  first->set_enabled(true);
  const at::Tensor with_first = logits_of(b, in);
  CHECK(max_abs_diff(with_first, expected.at("logits")) <= 1e-5);
  first->set_enabled(false);
  second->set_enabled(true);
  const at::Tensor with_second = logits_of(b, in);
  CHECK(
      max_abs_diff(with_second, models::load_checkpoint(dir / "double_seq_bn" /
                                                        "expected.safetensors")
                                    .at("logits")) <= 1e-5);
  // Both: AdapterHub's Stack(first, second), in the order they were added.
  first->set_enabled(true);
  const at::Tensor stacked = logits_of(b, in);
  CHECK(max_abs_diff(stacked, with_first) > 1e-3);
  CHECK(max_abs_diff(stacked, with_second) > 1e-3);
  testing::ScratchDir scratch("bottleneck-stack");
  save_adapterhub_folder(scratch / "first", "first", seq.config, b.ctx.info,
                         model_class(b), first->state_dict_to_save(""), {});
  save_adapterhub_folder(scratch / "second", "second", dbl.config, b.ctx.info,
                         model_class(b), second->state_dict_to_save(""), {});
  check_in_adapterhub("bert", scratch / "first", stacked, scratch,
                      scratch / "second");

  // The same name twice in one slot is refused.
  BottleneckConfig again = BottleneckConfig::preset("seq_bn");
  CHECK_THAT(error_of([&] { add_bottleneck(b.ctx, "first", again); }),
             Catch::Contains("\"first\" (in use)"));

  first->remove();
  CHECK(torch::equal(logits_of(b, in), with_second));
  second->remove();
  CHECK(torch::equal(logits_of(b, in), base_logits));
  for (const auto& item : b.loaded.module().named_modules())
    CHECK(item.key().find("adapters") == std::string::npos);
}

TEST_CASE(
    "A bottleneck adapter saved here is AdapterHub's folder byte for "
    "byte and loads in AdapterHub",
    "[peft][bottleneck]") {
  for (const auto& model : kModels) {
    const auto in = inputs_of(model);
    for (const auto& cfg : kConfigs) {
      CAPTURE(model, cfg);
      const fs::path ref = bn_fixtures() / model / cfg / "adapter_safetensors";
      Base b = load_base(model);
      AdapterHubFolder folder = read_adapterhub_folder(ref);
      auto adapter = add_bottleneck(b.ctx, "a", folder.config);
      adapter->load_saved(folder.adapter_weights, "", ref.string());
      adapter->set_enabled(true);

      testing::ScratchDir scratch("bottleneck-save");
      const fs::path out = scratch / cfg;
      save_adapterhub_folder(out, "a", folder.config, b.ctx.info,
                             model_class(b), adapter->state_dict_to_save(""),
                             head_of(b));
      for (const char* file : {"adapter_config.json", "adapter.safetensors",
                               "head_config.json", "model_head.safetensors"}) {
        CAPTURE(file);
        CHECK(read_text(out / file) == read_text(ref / file));
      }
      const AdapterHubFolder back = read_adapterhub_folder(out);
      CHECK(back.name == "a");
      REQUIRE(sorted_keys(back.adapter_weights) ==
              sorted_keys(folder.adapter_weights));
      for (const auto& [key, t] : folder.adapter_weights)
        CHECK(torch::equal(back.adapter_weights.at(key), t));
      for (const auto& [key, t] : folder.head_weights)
        CHECK(torch::equal(back.head_weights.at(key), t));
      if (cfg == "double_seq_bn")  // one AdapterHub run per model is enough
        check_in_adapterhub(model, out, logits_of(b, in), scratch);
    }
  }
}

TEST_CASE("Bottleneck adapters with every other flag match AdapterHub",
          "[peft][bottleneck]") {
  // Flag combinations the presets do not reach, with random weights, saved
  // here and run by AdapterHub.
  std::vector<std::pair<std::string, BottleneckConfig>> configs;
  {
    BottleneckConfig c;  // sequential, both places, every extra module
    c.architecture = "";
    c.mh_adapter = true;
    c.ln_before = true;
    c.ln_after = true;
    c.use_gating = true;
    c.scaling_mode = "channel";
    c.adapter_residual_before_ln = true;
    c.residual_before_ln = false;
    c.non_linearity = "gelu";
    c.reduction_factor = 8;
    c.reduction_factor_by_layer = {{0, 4}};
    c.init_weights = "houlsby";
    configs.emplace_back("seq_all_flags", c);
  }
  {
    BottleneckConfig c = BottleneckConfig::preset("scaled_par_bn");
    c.ln_after = true;
    c.use_gating = true;
    c.mh_adapter = true;
    c.leave_out = {1};
    c.non_linearity = "leakyrelu";
    configs.emplace_back("par_gated", c);
  }
  {
    BottleneckConfig c;  // AdapterPlus-like: no LayerNorm after
    c.original_ln_after = false;
    c.residual_before_ln = false;
    c.scaling_mode = "channel";
    c.non_linearity = "gelu_new";
    c.reduction_factor = 0.5;  // an up-projection
    configs.emplace_back("no_ln_after", c);
  }
  const auto in = inputs_of("bert");
  for (auto& [label, config] : configs) {
    CAPTURE(label);
    Base b = load_base("bert");
    auto adapter = add_bottleneck(b.ctx, "custom", config);
    {
      at::NoGradGuard no_grad;
      torch::manual_seed(7);
      for (auto& [name, t] : adapter->named_parameters())
        t.copy_(0.3 * torch::randn(t.sizes()));
    }
    adapter->set_enabled(true);
    testing::ScratchDir scratch("bottleneck-flags");
    const fs::path out = scratch / label;
    save_adapterhub_folder(out, "custom", config, b.ctx.info, model_class(b),
                           adapter->state_dict_to_save(""), head_of(b));
    // Our own reader gives back the config we wrote.
    const AdapterHubFolder back = read_adapterhub_folder(out);
    CHECK(bottleneck_config_to_json(back.config) ==
          bottleneck_config_to_json(config));
    check_in_adapterhub("bert", out, logits_of(b, in), scratch);
  }
}

TEST_CASE("Bottleneck adapters run on CUDA and match AdapterHub",
          "[peft][bottleneck][cuda]") {
  if (!torch::cuda::is_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  models::LoadEncoderOptions options;
  options.device = torch::kCUDA;
  for (const auto& cfg : kConfigs) {
    CAPTURE(cfg);
    const fs::path dir = bn_fixtures() / "bert" / cfg;
    Base b = load_base("bert", options);
    AdapterHubFolder folder = read_adapterhub_folder(dir / "adapter");
    auto adapter = add_bottleneck(b.ctx, "a", folder.config);
    adapter->load_saved(folder.adapter_weights, "", "adapter");
    for (const auto& [name, t] : adapter->named_parameters())
      CHECK(t.is_cuda());
    adapter->set_enabled(true);
    auto in = inputs_of("bert");
    in.input_ids = in.input_ids.cuda();
    in.attention_mask = in.attention_mask.cuda();
    in.token_type_ids = in.token_type_ids.cuda();
    const auto expected = models::load_checkpoint(dir / "expected.safetensors");
    CHECK(max_abs_diff(logits_of(b, in).cpu(), expected.at("logits")) <= 1e-4);
  }
}
