// Bottleneck adapters beyond the AdapterHub comparison: dropout and
// stochastic depth act in training only, and configs or folders that
// cannot be used are refused with a clear message.

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
using namespace peftcpp::testing::bottleneck;
using peftcpp::testing::max_abs_diff;
namespace fs = std::filesystem;

TEST_CASE("Bottleneck dropout and stochastic depth act in training only",
          "[peft][bottleneck]") {
  const auto in = inputs_of("bert");
  Base b = load_base("bert");
  BottleneckConfig config = BottleneckConfig::preset("seq_bn");
  config.dropout = 0.5;
  config.stochastic_depth = 0.5;
  auto adapter = add_bottleneck(b.ctx, "a", config);
  adapter->set_enabled(true);
  const at::Tensor eval_logits = logits_of(b, in);
  CHECK(torch::equal(logits_of(b, in), eval_logits));
  // Only the adapters train: the base model's own dropout stays off.
  for (const auto& item : b.loaded.module().named_modules()) {
    if (item.key().size() > 9 &&
        item.key().compare(item.key().size() - 9, 9, ".adapters") == 0)
      item.value()->train();
  }
  CHECK_FALSE(torch::equal(logits_of(b, in), eval_logits));
}

TEST_CASE(
    "Bottleneck configs and folders that cannot be used are refused "
    "with a clear message",
    "[peft][bottleneck][errors]") {
  Base b = load_base("bert");
  SECTION("unknown presets and options") {
    CHECK_THROWS_AS(BottleneckConfig::preset("lora"), std::invalid_argument);
    CHECK_THAT(error_of([] { BottleneckConfig::preset("lora"); }),
               Catch::Contains("\"double_seq_bn\" (\"houlsby\")"));
    BottleneckConfig c;
    c.non_linearity = "nope";
    CHECK_THROWS_AS(add_bottleneck(b.ctx, "a", c), std::invalid_argument);
    CHECK_THAT(error_of([&] { add_bottleneck(b.ctx, "a", c); }),
               Catch::Contains("non_linearity") && Catch::Contains("\"nope\""));
    c = BottleneckConfig{};
    c.init_weights = "xavier";
    CHECK_THAT(error_of([&] { add_bottleneck(b.ctx, "a", c); }),
               Catch::Contains("\"mam_adapter\""));
    c = BottleneckConfig{};
    c.scaling_mode = "per_token";
    CHECK_THAT(error_of([&] { add_bottleneck(b.ctx, "a", c); }),
               Catch::Contains("\"channel\""));
    c = BottleneckConfig{};
    c.output_adapter = false;
    CHECK_THROWS_AS(add_bottleneck(b.ctx, "a", c), std::invalid_argument);
    CHECK_THAT(error_of([&] { add_bottleneck(b.ctx, "a", c); }),
               Catch::Contains("at least one place for the adapter"));
    c = BottleneckConfig{};
    c.reduction_factor = 0;
    c.reduction_factor_by_layer = {{0, 4}};
    CHECK_THAT(error_of([&] { add_bottleneck(b.ctx, "a", c); }),
               Catch::Contains("layer 1") && Catch::Contains("no default"));
    // Nothing was left behind by the refused adds.
    for (const auto& item : b.loaded.module().named_modules())
      CHECK(item.key().find("adapters") == std::string::npos);
  }
  SECTION("AdapterHub options peftcpp does not implement") {
    const std::string base =
        R"({"mh_adapter": false, "output_adapter": true,
            "reduction_factor": 16, "non_linearity": "relu", )";
    for (const auto& [extra, name] :
         std::vector<std::pair<std::string, std::string>>{
             {R"("phm_layer": true})", "phm_layer (Compacter)"},
             {R"("residual_before_ln": "post_add"})", "\"post_add\""},
             {R"("inv_adapter": "nice"})", "inv_adapter"}}) {
      CAPTURE(extra);
      CHECK_THROWS_AS(parse_bottleneck_config(base + extra, "cfg.json"),
                      std::invalid_argument);
      CHECK_THAT(
          error_of([&] { parse_bottleneck_config(base + extra, "cfg.json"); }),
          Catch::Contains("[cfg.json]") && Catch::Contains(name) &&
              Catch::Contains("not implemented in peftcpp"));
    }
    CHECK_THAT(error_of([&] {
                 parse_bottleneck_config(R"({"architecture": "lora", "r": 8})",
                                         "cfg.json");
               }),
               Catch::Contains("a bottleneck adapter config"));
    CHECK_THAT(error_of([&] {
                 parse_bottleneck_config(R"({"mh_adapter": false})",
                                         "cfg.json");
               }),
               Catch::Contains("\"output_adapter\""));
    // A string config names a preset; absent fields are BnConfig's.
    CHECK(parse_bottleneck_config(R"("houlsby")", "x").mh_adapter);
    CHECK_FALSE(parse_bottleneck_config(base + R"("use_gating": false})", "x")
                    .original_ln_before);
  }
  SECTION("weights that do not fit") {
    const fs::path ref =
        bn_fixtures() / "bert" / "seq_bn" / "adapter_safetensors";
    AdapterHubFolder folder = read_adapterhub_folder(ref);
    BottleneckConfig wider = folder.config;
    wider.reduction_factor = 8;
    auto adapter = add_bottleneck(b.ctx, "a", wider);
    const std::string shape = error_of(
        [&] { adapter->load_saved(folder.adapter_weights, "", "f.st"); });
    CHECK_THAT(shape, Catch::Contains("[load_adapter]") &&
                          Catch::Contains(
                              "bert.encoder.layer.0.output.adapters.a."
                              "adapter_down.0.weight\" of shape [4, 32]") &&
                          Catch::Contains("got [2, 32] in f.st") &&
                          Catch::Contains("maybe wrong base model?"));
    adapter->remove();
    auto fits = add_bottleneck(b.ctx, "a", folder.config);
    TensorMap missing = folder.adapter_weights;
    missing.erase("bert.encoder.layer.1.output.adapters.a.adapter_up.bias");
    const std::string gone =
        error_of([&] { fits->load_saved(missing, "", "f.st"); });
    CHECK_THAT(gone, Catch::Contains("expected tensor \"bert.encoder.layer.1."
                                     "output.adapters.a.adapter_up.bias\" in "
                                     "f.st, got none"));
  }
  SECTION("folders") {
    testing::ScratchDir scratch("bottleneck-errors");
    CHECK_FALSE(is_adapterhub_folder(scratch.path()));
    CHECK(is_adapterhub_folder(bn_fixtures() / "bert" / "seq_bn" / "adapter"));
    fs::create_directories(scratch / "x");
    std::ofstream(scratch / "x" / "adapter_config.json")
        << R"({"peft_type": "LORA", "r": 8})";
    CHECK_FALSE(is_adapterhub_folder(scratch / "x"));
    fs::copy_file(
        bn_fixtures() / "bert" / "seq_bn" / "adapter" / "adapter_config.json",
        scratch / "x" / "adapter_config.json",
        fs::copy_options::overwrite_existing);
    CHECK(is_adapterhub_folder(scratch / "x"));
    CHECK_THROWS_AS(read_adapterhub_folder(scratch / "x"), std::runtime_error);
    CHECK_THAT(error_of([&] { read_adapterhub_folder(scratch / "x"); }),
               Catch::Contains("adapter.safetensors or pytorch_adapter.bin") &&
                   Catch::Contains((scratch / "x").string()));
  }
}
