// The errors users see from the PEFT API, checked by message: no target
// matches, an adapter for another base model, a missing tensor, an unknown
// peft_type, deleting the active adapter. A refused adapter leaves the model
// as it was.

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <fstream>

#include "models/checkpoint/safetensors.h"
#include "models/checkpoint/state_dict.h"
#include "peft/peft_model.h"
#include "tests/peft/tiny_peft_models.h"
#include "tests/test_paths.h"

using namespace peftcpp;
using namespace peftcpp::peft;
using peftcpp::testing::tiny_config;
using peftcpp::testing::tiny_model;

TEST_CASE(
    "a target list that matches nothing is refused with the model's layer "
    "names",
    "[peft][errors]") {
  PeftModel model(tiny_model("bert", 5));
  AdapterConfig config;
  LoraConfig lora;
  lora.target_modules = ModuleSelector::list({"q_proj", "v_proj"});
  config.method = lora;
  REQUIRE_THROWS_WITH(
      model->add_adapter("default", config),
      Catch::Contains("expected target_modules to match at least one module") &&
          Catch::Contains("bert.encoder.layer.0.attention.self.query") &&
          Catch::Contains("query"));
  CHECK(model->adapter_names().empty());
  CHECK(model->count_parameters().trainable == 0);
}

TEST_CASE(
    "an adapter for another base model is refused naming the tensor that does "
    "not fit",
    "[peft][errors]") {
  testing::ScratchDir dir("peft_errors_shape");
  {
    PeftModel small(tiny_model("bert", 6));
    AdapterConfig config;
    config.method = LoraConfig{};
    small->add_adapter("default", config);
    small->save_adapter(dir.path());
  }
  models::LoadedEncoder wider;
  wider.config = tiny_config("bert");
  wider.config.hidden_size = 48;
  wider.config.num_attention_heads = 4;
  wider.classifier = models::SequenceClassifier(wider.config);
  PeftModel model(std::move(wider));
  const auto before = model->count_parameters();
  REQUIRE_THROWS_WITH(model->load_adapter(dir.path(), "default"),
                      Catch::Contains("lora_A.weight") &&
                          Catch::Contains("[8, 32]") &&
                          Catch::Contains("maybe wrong base model"));
  // Nothing half-loaded.
  CHECK(model->adapter_names().empty());
  CHECK(model->count_parameters().total == before.total);
}

TEST_CASE("an adapter file missing a tensor is refused naming it",
          "[peft][errors]") {
  testing::ScratchDir dir("peft_errors_missing");
  PeftModel model(tiny_model("bert", 7));
  AdapterConfig config;
  config.method = LoraConfig{};
  model->add_adapter("default", config);
  model->save_adapter(dir.path());
  auto tensors =
      models::load_checkpoint(dir.path() / "adapter_model.safetensors");
  const std::string dropped =
      "base_model.model.bert.encoder.layer.1.attention.self.value.lora_B."
      "weight";
  REQUIRE(tensors.erase(dropped) == 1);
  std::vector<std::pair<std::string, at::Tensor>> kept(tensors.begin(),
                                                       tensors.end());
  models::save_safetensors(dir.path() / "adapter_model.safetensors", kept);
  PeftModel fresh(tiny_model("bert", 7));
  REQUIRE_THROWS_WITH(fresh->load_adapter(dir.path(), "default"),
                      Catch::Contains("expected tensor \"" + dropped + "\""));
}

TEST_CASE("an unknown peft_type is refused listing the known ones",
          "[peft][errors]") {
  testing::ScratchDir dir("peft_errors_type");
  std::ofstream(dir.path() / "adapter_config.json")
      << R"({"peft_type": "LOHA", "r": 8, "task_type": "SEQ_CLS"})";
  PeftModel model(tiny_model("bert", 8));
  REQUIRE_THROWS_WITH(model->load_adapter(dir.path(), "default"),
                      Catch::Contains("\"LOHA\"") && Catch::Contains("LORA") &&
                          Catch::Contains("adapter_config.json"));
}

TEST_CASE("deleting the active adapter is refused", "[peft][errors]") {
  PeftModel model(tiny_model("bert", 9));
  AdapterConfig config;
  config.method = LoraConfig{};
  model->add_adapter("a", config);
  model->add_adapter("b", config);
  REQUIRE_THROWS_WITH(model->delete_adapter("a"),
                      Catch::Contains("the active adapter") &&
                          Catch::Contains("set_adapter another adapter first"));
  REQUIRE_THROWS_AS(model->delete_adapter("nope"), std::out_of_range);
  model->set_adapter("b");
  model->delete_adapter("a");
  CHECK(model->adapter_names() == std::vector<std::string>{"b"});
}
