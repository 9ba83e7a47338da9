// Parity with Hugging Face PEFT, both directions, for every PEFT method on
// tiny random BERT and RoBERTa sequence classifiers
// (tests/fixtures/make_peft.py writes the references with peft 0.21):
// - an adapter made and saved by Python PEFT (random non-identity weights,
//   classifier copy included) loads here and gives PEFT's logits
//   (max |delta| <= 1e-5);
// - merge_and_unload here gives PEFT's merged weights;
// - an adapter made and saved here loads with PeftModel.from_pretrained and
//   gives our logits and, merged, our merged weights
//   (tests/fixtures/check_peft_adapter.py, same bound);
// - prompt tuning's TEXT init equals PEFT's, SAMPLE_VOCAB draws vocabulary
//   rows.

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "models/checkpoint/safetensors.h"
#include "models/checkpoint/state_dict.h"
#include "peft/peft_model.h"
#include "tests/test_paths.h"
#include "tests/test_tensors.h"

using namespace peftcpp;
using namespace peftcpp::peft;
using peftcpp::testing::max_abs_diff;
namespace fs = std::filesystem;

namespace {

fs::path peft_fixtures() {
  return testing::fixture_dir() / "peft";
}
fs::path base_dir(const std::string& model) {
  return peft_fixtures() / (model + "_base");
}

models::EncoderInputs inputs_of(const std::string& model) {
  const auto io =
      models::load_checkpoint(base_dir(model) / "inputs.safetensors");
  models::EncoderInputs in;
  in.input_ids = io.at("input_ids");
  in.attention_mask = io.at("attention_mask");
  in.token_type_ids = io.at("token_type_ids");
  return in;
}

PeftModel load_base(const std::string& model) {
  PeftModel m(models::load_encoder(base_dir(model)));
  m->eval();
  return m;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Case {
  std::string model;
  std::string name;
  bool mergeable;
  fs::path dir() const { return peft_fixtures() / (model + "_" + name); }
};

std::vector<Case> cases() {
  std::vector<Case> out;
  const std::vector<std::pair<std::string, bool>> names = {
      {"lora", true},
      {"rslora", true},
      {"dora", true},
      {"lora_bias", true},
      {"lora_patterns", true},
      {"lora_layers", true},
      {"ia3", true},
      {"prompt_tuning_random", false},
      {"prompt_tuning_text", false},
      {"prompt_tuning_sample_vocab", false},
      {"p_tuning", false},
      {"prefix_tuning", false},
      {"prefix_tuning_proj", false}};
  for (const std::string model : {"bert", "roberta"}) {
    for (const auto& [name, mergeable] : names) {
      if (name == "prompt_tuning_text" && model == "roberta")
        continue;  // needs a byte-level BPE tokenizer (see make_peft.py)
      out.push_back({model, name, mergeable});
    }
  }
  return out;
}

// Every weight of the merged model against the file's "merged.<name>";
// returns the largest difference.
double check_merged(torch::nn::Module& merged,
                    const models::StateDict& expected) {
  int compared = 0;
  double worst = 0;
  for (const auto& p : merged.named_parameters()) {
    const auto it = expected.find("merged." + p.key());
    INFO(p.key());
    REQUIRE(it != expected.end());
    const double d = max_abs_diff(p.value(), it->second);
    CHECK(d <= 1e-5);
    worst = std::max(worst, d);
    ++compared;
  }
  CHECK(compared > 10);
  return worst;
}

// Random non-identity values for every trainable tensor (as make_peft.py
// does on the Python side), from a seed.
void randomize(PeftModelImpl& model, uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  for (auto& p : model.named_parameters()) {
    if (!p.value().requires_grad())
      continue;
    if (p.key().find("lora_magnitude_vector") != std::string::npos)
      p.value().mul_(1 + 0.2 * torch::rand_like(p.value()));
    else
      p.value().copy_(0.2 * torch::randn_like(p.value()));
  }
}

}  // namespace

TEST_CASE(
    "adapters saved by Python PEFT load and give PEFT's logits and merged "
    "weights",
    "[peft][parity]") {
  for (const Case& c : cases()) {
    SECTION(c.model + "_" + c.name) {
      REQUIRE(fs::exists(c.dir() / "adapter" / "adapter_config.json"));
      const auto expected =
          models::load_checkpoint(c.dir() / "expected.safetensors");
      PeftModel model = load_base(c.model);
      model->load_adapter(c.dir() / "adapter", "default");
      torch::NoGradGuard no_grad;
      const at::Tensor logits = model->forward(inputs_of(c.model));
      const double d = max_abs_diff(logits, expected.at("logits"));
      CHECK(d <= 1e-5);
      // The measured figures, for the record (ctest -V shows them).
      std::printf("PEFT -> peftcpp %-30s logits max|d| %.3g",
                  (c.model + "_" + c.name).c_str(), d);
      if (c.mergeable) {
        models::LoadedEncoder merged = model->merge_and_unload();
        const double w = check_merged(merged.module(), expected);
        merged.module().eval();
        const double m =
            max_abs_diff(merged.classifier->forward(inputs_of(c.model)),
                         expected.at("logits"));
        CHECK(m <= 1e-5);
        std::printf("  merged weights %.3g  merged logits %.3g", w, m);
      }
      std::printf("\n");
    }
  }
}

TEST_CASE(
    "adapters saved by peftcpp load in Python PEFT with our logits and merged "
    "weights",
    "[peft][parity]") {
  uint64_t seed = 100;
  for (const Case& c : cases()) {
    ++seed;
    SECTION(c.model + "_" + c.name) {
      // The method settings of the Python case, our own weights.
      AdapterConfig config = parse_adapter_config(
          read_text(c.dir() / "adapter" / "adapter_config.json"), "fixture");
      config.inference_mode = false;
      PeftModel model = load_base(c.model);
      model->add_adapter("default", config);
      randomize(*model, seed);
      const models::EncoderInputs in = inputs_of(c.model);
      testing::ScratchDir dir("peft_parity_" + c.model + "_" + c.name);
      torch::NoGradGuard no_grad;
      const at::Tensor logits = model->forward(in);
      model->save_adapter(dir / "adapter");
      models::save_safetensors(dir / "ours.safetensors", {{"logits", logits}});
      std::string merged_arg;
      if (c.mergeable) {
        models::LoadedEncoder merged = model->merge_and_unload();
        std::vector<std::pair<std::string, at::Tensor>> weights;
        for (const auto& p : merged.module().named_parameters())
          weights.emplace_back(p.key(), p.value());
        models::save_safetensors(dir / "merged.safetensors", weights);
        merged_arg =
            " --merged '" + (dir / "merged.safetensors").string() + "'";
      }
      const auto r = testing::run_fixture_script(
          "check_peft_adapter.py",
          "--base '" + base_dir(c.model).string() + "' --adapter '" +
              (dir / "adapter").string() + "' --inputs '" +
              (base_dir(c.model) / "inputs.safetensors").string() +
              "' --expected '" + (dir / "ours.safetensors").string() + "'" +
              merged_arg);
      INFO(r.output);
      CHECK(r.code == 0);
      std::printf("peftcpp -> PEFT %s_%s:\n%s", c.model.c_str(), c.name.c_str(),
                  r.output.c_str());
    }
  }
}

TEST_CASE(
    "prompt tuning's TEXT init equals PEFT's and SAMPLE_VOCAB draws vocabulary "
    "rows",
    "[peft][parity]") {
  for (const std::string name :
       {"prompt_tuning_text", "prompt_tuning_sample_vocab"}) {
    SECTION(name) {
      const fs::path dir = peft_fixtures() / ("bert_" + name);
      const auto expected =
          models::load_checkpoint(dir / "expected.safetensors");
      AdapterConfig config = parse_adapter_config(
          read_text(dir / "adapter" / "adapter_config.json"), "fixture");
      config.inference_mode = false;
      PeftModel model = load_base("bert");
      model->add_adapter("default", config);
      testing::ScratchDir scratch("peft_prompt_init");
      model->save_adapter(scratch.path());
      const at::Tensor table =
          models::load_checkpoint(scratch / "adapter_model.safetensors")
              .at("prompt_embeddings");
      const at::Tensor vocab =
          model->base().base()->embeddings->word_embeddings->weight.detach();
      if (name == "prompt_tuning_text") {
        CHECK(max_abs_diff(table, expected.at("init_prompt_embeddings")) ==
              0.0);
      } else {
        // Each virtual token is some row of the embedding table.
        for (int64_t i = 0; i < table.size(0); ++i) {
          const at::Tensor d = (vocab - table[i]).abs().amax(/*dim=*/1);
          CHECK(d.min().item<double>() == 0.0);
        }
      }
    }
  }
}
