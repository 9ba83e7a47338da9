// AdapterHub bottleneck adapters (adapters 1.3.0) in decoder-only models,
// against its outputs on tiny random GPT2LMHeadModel and LlamaForCausalLM:
// - its seq_bn (Pfeiffer), double_seq_bn (Houlsby) and par_bn folders, both
//   file formats, load here (attention_adapters / output_adapters of every
//   block, its parameter names) and give its logits on a right-padded batch
//   (fp32, |delta| <= 1e-5 on real tokens); disabled, the base model's;
// - adapters made here save under AdapterHub's names, load back with the
//   same logits and load in AdapterHub with our logits
//   (tests/fixtures/check_bottleneck_decoder_adapter.py); deleted, they
//   leave the blocks as they were.
// References: tests/fixtures/bottleneck_decoder_reference.py, run by
// generate_all.py's make_bottleneck into <fixtures>/bottleneck/decoders.

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "models/checkpoint/safetensors.h"
#include "models/checkpoint/state_dict.h"
#include "models/decoder/load_decoder.h"
#include "peft/adapter_config.h"
#include "peft/peft_model.h"
#include "tests/test_paths.h"
#include "tests/test_tensors.h"

using namespace peftcpp;
using peft::AdapterConfig;
using peft::PeftModel;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kModels = {"gpt2", "llama"};
const std::vector<std::string> kConfigs = {"seq_bn", "double_seq_bn", "par_bn"};

fs::path fixture() {
  const fs::path dir = testing::fixture_dir() / "bottleneck";
  if (fs::exists(dir / "UNAVAILABLE.txt")) {
    FAIL("the AdapterHub references were not generated: " +
         testing::read_file_bytes(dir / "UNAVAILABLE.txt"));
  }
  if (!fs::exists(dir / "decoders" / "gpt2" / "inputs.safetensors")) {
    FAIL("expected the AdapterHub decoder references in " + dir.string() +
         ", got none (hint: tests/fixtures/generate_all.py --out " +
         testing::fixture_dir().string() + ")");
  }
  return dir / "decoders";
}

PeftModel load_base(const std::string& model) {
  models::LoadDecoderOptions options;
  options.strict = true;
  PeftModel peft(models::load_decoder(fixture() / model / "base", options));
  peft->eval();
  return peft;
}

models::DecoderInputs inputs_of(const std::string& model) {
  const auto io =
      models::load_checkpoint(fixture() / model / "inputs.safetensors");
  models::DecoderInputs in;
  in.input_ids = io.at("input_ids");
  in.attention_mask = io.at("attention_mask");
  return in;
}

// max |a - b| over the real tokens' logits (padded positions are never
// used, and transformers' eager masking differs from ours there).
double real_token_diff(const at::Tensor& a, const at::Tensor& b,
                       const at::Tensor& mask) {
  return ((a - b).abs() * mask.unsqueeze(-1).to(a.scalar_type()))
      .max()
      .item<double>();
}

// The adapters venv's python, as generate_all.py recorded it.
std::string adapters_python() {
  std::string line =
      testing::read_file_bytes(fixture().parent_path() / "python.txt");
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
    line.pop_back();
  return line;
}

// AdapterHub must load a folder we wrote and give our logits.
void check_in_adapterhub(const std::string& model, const std::string& config,
                         const fs::path& adapter, const at::Tensor& our_logits,
                         const testing::ScratchDir& scratch) {
  const fs::path expected = scratch / "ours.safetensors";
  models::save_safetensors(expected, {{"logits", our_logits.contiguous()}});
  const auto r = testing::run_command(
      "'" + adapters_python() + "' '" + PEFTCPP_SOURCE_DIR +
      "/tests/fixtures/check_bottleneck_decoder_adapter.py' --base '" +
      (fixture() / model / "base").string() + "' --adapter '" +
      adapter.string() + "' --inputs '" +
      (fixture() / model / "inputs.safetensors").string() + "' --expected '" +
      expected.string() + "'");
  INFO(r.output);
  REQUIRE(r.code == 0);
  std::printf("[bottleneck decoders] %s %s in AdapterHub: %s", model.c_str(),
              config.c_str(),
              r.output.substr(r.output.rfind("max_abs_diff")).c_str());
}

std::set<std::string> adapter_keys(PeftModel& m) {
  std::set<std::string> out;
  const std::string prefix = "base_model.";  // PeftModel's
  for (const auto& item : m->named_parameters()) {
    if (item.key().find(".adapters.") != std::string::npos)
      out.insert(item.key().substr(prefix.size()));
  }
  return out;
}

}  // namespace

TEST_CASE(
    "AdapterHub's bottleneck adapters on GPT-2 and LLaMA load here "
    "with its logits",
    "[peft][bottleneck][decoder]") {
  torch::NoGradGuard no_grad;
  for (const auto& model : kModels) {
    const models::DecoderInputs in = inputs_of(model);
    for (const auto& config : kConfigs) {
      const auto expected = models::load_checkpoint(fixture() / model / config /
                                                    "expected.safetensors");
      for (const char* sub : {"adapter", "adapter_safetensors"}) {
        INFO(model << " " << config << " " << sub);
        PeftModel m = load_base(model);
        m->load_adapter(fixture() / model / config / sub, "a");
        m->set_adapter("a");
        const at::Tensor logits = m->forward(in);
        CHECK(real_token_diff(logits, expected.at("logits"),
                              in.attention_mask) <= 1e-5);
        {
          auto off = m->disable_adapters();
          CHECK(real_token_diff(m->forward(in), expected.at("base_logits"),
                                in.attention_mask) <= 1e-5);
        }
        // Where AdapterHub puts them: output_adapters for seq_bn and
        // par_bn, both residual connections for double_seq_bn, in every
        // block.
        const std::string block =
            model == "gpt2" ? "transformer.h.1." : "model.layers.1.";
        const std::set<std::string> keys = adapter_keys(m);
        CHECK(
            keys.count(block + "output_adapters.adapters.a.adapter_up.weight"));
        CHECK(keys.count(block +
                         "attention_adapters.adapters.a.adapter_up.weight") ==
              (config == "double_seq_bn" ? 1u : 0u));
        CHECK(keys.size() == (config == "double_seq_bn" ? 16u : 8u));
      }
    }
  }
}

TEST_CASE(
    "bottleneck adapters made on decoders save in AdapterHub's format "
    "and load back",
    "[peft][bottleneck][decoder]") {
  torch::NoGradGuard no_grad;
  for (const auto& model : kModels) {
    for (const auto& config : kConfigs) {
      INFO(model << " " << config);
      const models::DecoderInputs in = inputs_of(model);
      PeftModel m = load_base(model);
      const at::Tensor base_logits = m->forward(in);
      AdapterConfig c;
      c.task_type = "CAUSAL_LM";
      c.method = peft::BottleneckConfig::preset(config);
      m->add_adapter("b", c);
      m->set_adapter("b");
      torch::manual_seed(5);
      for (const auto& item : m->named_parameters()) {
        if (item.key().find(".adapters.b.") != std::string::npos)
          item.value().copy_(0.3 * torch::randn(item.value().sizes()));
      }
      const at::Tensor logits = m->forward(in);
      CHECK(real_token_diff(logits, base_logits, in.attention_mask) > 1e-2);

      const testing::ScratchDir scratch("bn_dec_" + model + "_" + config);
      const fs::path dir = scratch / "b";
      m->save_adapter(dir, "b");
      // AdapterHub's names, as its own save of the same config has them.
      std::set<std::string> ours;
      for (const auto& [key, t] :
           models::load_checkpoint(dir / "adapter.safetensors"))
        ours.insert(key);
      std::set<std::string> theirs;
      for (const auto& [key, t] : models::load_checkpoint(
               fixture() / model / config / "adapter_safetensors" /
               "adapter.safetensors")) {
        std::string k = key;
        k.replace(k.find(".adapters.a."), 12, ".adapters.b.");
        theirs.insert(k);
      }
      CHECK(ours == theirs);

      PeftModel again = load_base(model);
      again->load_adapter(dir, "b");
      again->set_adapter("b");
      CHECK(real_token_diff(again->forward(in), logits, in.attention_mask) <=
            1e-6);
      check_in_adapterhub(model, config, dir, logits, scratch);

      // Deleted, the blocks are the base model's again (with a LoRA
      // adapter active instead, whose zero B leaves the outputs as they are).
      AdapterConfig lora;
      lora.task_type = "CAUSAL_LM";
      lora.method = peft::LoraConfig{};
      m->add_adapter("other", lora);
      m->set_adapter("other");
      m->delete_adapter("b");
      CHECK(adapter_keys(m).empty());
      for (const auto& item : m->named_modules()) {
        CHECK(item.key().find("_adapters") == std::string::npos);
      }
      CHECK(testing::max_abs_diff(m->forward(in), base_logits) == 0.0);
    }
  }
}
