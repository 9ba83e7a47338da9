// PEFT methods on decoder-only models against Hugging Face peft 0.21 +
// transformers on tiny random GPT2LMHeadModel (Conv1D projections),
// LlamaForCausalLM (GQA: 4 heads, 2 key/value heads) and
// LlamaForSequenceClassification:
// - adapters saved by peft (LoRA, DoRA with rsLoRA, (IA)^3, prompt tuning,
//   prefix tuning) load here and give peft's logits on left- and
//   right-padded batches (fp32, |delta| <= 1e-5 on real tokens);
// - merged LoRA gives the same logits and peft's merged weights (GPT-2's
//   Conv1D weights folded in [out, in] storage);
// - greedy generation with each adapter equals peft's generate() on a
//   left-padded batch, with and without the cache;
// - adapters made and saved here load in peft with our logits, and their
//   adapter_config.json completes the defaults as peft does (fan_in_fan_out
//   for Conv1D, the grouped-query prefix width).
// References: tests/fixtures/make_peft_decoders.py; the peft side of the
// round trip: tests/fixtures/check_peft_decoder_adapter.py.

#include <torch/torch.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "models/checkpoint/safetensors.h"
#include "models/checkpoint/state_dict.h"
#include "models/decoder/generation.h"
#include "models/decoder/load_decoder.h"
#include "peft/adapter_config.h"
#include "peft/peft_model.h"
#include "tests/test_paths.h"
#include "tests/test_tensors.h"

using namespace peftcpp;
using peft::AdapterConfig;
using peft::PeftModel;
using testing::max_abs_diff;
namespace fs = std::filesystem;

namespace {

fs::path fixture() {
  return testing::fixture_dir() / "peft_decoders";
}

struct Case {
  std::string model;   // "gpt2", "llama", "llama_cls"
  std::string method;  // "lora", "dora", "ia3", "prompt", "prefix"
  std::string name() const { return model + "_" + method; }
  bool causal() const { return model != "llama_cls"; }
  bool mergeable() const {
    return method == "lora" || method == "dora" || method == "ia3";
  }
};

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const std::string model : {"gpt2", "llama", "llama_cls"}) {
    for (const std::string method : {"lora", "ia3", "prompt", "prefix"})
      out.push_back({model, method});
  }
  out.push_back({"llama", "dora"});
  return out;
}

models::StateDict refs_of(const Case& c) {
  return models::load_checkpoint(fixture() / "refs" /
                                 (c.name() + ".safetensors"));
}

PeftModel load_base(const std::string& model) {
  models::LoadDecoderOptions options;
  options.strict = true;
  PeftModel peft(models::load_decoder(fixture() / "models" / model, options));
  peft->eval();
  return peft;
}

PeftModel load_case(const Case& c) {
  PeftModel model = load_base(c.model);
  model->load_adapter(fixture() / "adapters" / c.name(), "default");
  return model;
}

models::DecoderInputs inputs_of(const models::StateDict& refs,
                                const std::string& side) {
  models::DecoderInputs in;
  in.input_ids = refs.at(side + "_input_ids");
  in.attention_mask = refs.at(side + "_attention_mask");
  return in;
}

// max |delta| of causal LM logits [B, L, V] over the positions that hold a
// token (prompt tuning's virtual tokens first, always tokens); classifier
// logits [B, labels] whole.
double logits_diff(const at::Tensor& ours, const at::Tensor& theirs,
                   const at::Tensor& mask) {
  REQUIRE(ours.sizes() == theirs.sizes());
  if (ours.dim() == 2)
    return max_abs_diff(ours, theirs);
  const int64_t extra = ours.size(1) - mask.size(1);
  const at::Tensor full =
      at::cat({at::ones({mask.size(0), extra}, mask.options()), mask}, 1);
  const at::Tensor keep = full.to(at::kBool).unsqueeze(-1).expand_as(ours);
  return (ours.to(at::kDouble) - theirs.to(at::kDouble))
      .abs()
      .masked_select(keep)
      .max()
      .item<double>();
}

models::GenerationOptions greedy_options(int64_t new_tokens) {
  models::GenerationOptions o;
  // As the fixture's generate(): min_new_tokens == max_new_tokens, so eos
  // (2) is suppressed throughout; rows never stop early.
  o.max_new_tokens = new_tokens;
  o.min_new_tokens = new_tokens;
  o.stop_token_ids = {2};
  o.pad_token_id = 0;
  return o;
}

nlohmann::json read_json(const fs::path& path) {
  return nlohmann::json::parse(testing::read_file_bytes(path));
}

}  // namespace

TEST_CASE("adapters saved by peft give peft's logits on decoders (fp32)",
          "[peft][decoder][parity]") {
  torch::NoGradGuard no_grad;
  for (const Case& c : cases()) {
    CAPTURE(c.name());
    PeftModel model = load_case(c);
    const models::StateDict refs = refs_of(c);
    for (const std::string side : {"right", "left"}) {
      CAPTURE(side);
      const models::DecoderInputs in = inputs_of(refs, side);
      const at::Tensor logits = model->forward(in);
      const double d =
          logits_diff(logits, refs.at(side + "_logits"), in.attention_mask);
      CHECK(d <= 1e-5);
      std::printf("peft -> peftcpp %-16s %-5s logits max|d| %.3g\n",
                  c.name().c_str(), side.c_str(), d);
      // The adapter changes the output (prompt tuning: its shape too).
      auto off = model->disable_adapters();
      const at::Tensor base = model->forward(in);
      if (base.sizes() == logits.sizes())
        CHECK(logits_diff(base, logits, in.attention_mask) > 1e-3);
    }
  }
}

TEST_CASE(
    "merged LoRA, DoRA and (IA)^3 on decoders give the unmerged logits and "
    "peft's merged weights",
    "[peft][decoder][parity][merge]") {
  torch::NoGradGuard no_grad;
  for (const Case& c : cases()) {
    if (!c.mergeable())
      continue;
    CAPTURE(c.name());
    PeftModel model = load_case(c);
    const models::StateDict refs = refs_of(c);
    const models::DecoderInputs in = inputs_of(refs, "left");
    model->merge_adapter(/*safe=*/true);
    REQUIRE(model->merged());
    CHECK(logits_diff(model->forward(in), refs.at("left_logits"),
                      in.attention_mask) <= 1e-5);
    model->unmerge_adapter();
    CHECK(logits_diff(model->forward(in), refs.at("left_logits"),
                      in.attention_mask) <= 1e-5);
    models::LoadedDecoder merged = model->merge_and_unload_decoder();
    std::map<std::string, at::Tensor> ours;
    for (const auto& p : merged.module().named_parameters())
      ours[p.key()] = p.value();
    int compared = 0;
    for (const auto& [key, want] : refs) {
      if (key.rfind("merged.", 0) != 0)
        continue;
      const std::string name = key.substr(7);
      CAPTURE(name);
      REQUIRE(ours.count(name));
      // transformers keeps GPT-2's Conv1D weight as [in, out].
      const bool conv1d = name.find(".attn.c_attn.") != std::string::npos;
      const at::Tensor got = conv1d ? ours.at(name).t() : ours.at(name);
      CHECK(max_abs_diff(got, want) <= 1e-5 * want.abs().max().item<double>());
      ++compared;
    }
    if (c.method == "lora")
      CHECK(compared > 0);
    const at::Tensor plain = merged.has_classifier()
                                 ? merged.classifier->forward(in)
                                 : merged.causal_lm->forward(in);
    CHECK(logits_diff(plain, refs.at("left_logits"), in.attention_mask) <=
          1e-5);
  }
}

TEST_CASE(
    "greedy generation with LoRA, (IA)^3, prompt and prefix adapters equals "
    "peft's generate on a left-padded batch",
    "[peft][decoder][generate]") {
  for (const Case& c : cases()) {
    if (!c.causal())
      continue;
    CAPTURE(c.name());
    PeftModel model = load_case(c);
    const models::StateDict refs = refs_of(c);
    const at::Tensor expected = refs.at("generate_sequences");
    const at::Tensor ids = refs.at("generate_input_ids");
    models::GenerationInputs in;
    in.input_ids = ids;
    in.attention_mask = refs.at("generate_attention_mask");
    const int64_t new_tokens = expected.size(1) - ids.size(1);
    models::GenerationOptions options = greedy_options(new_tokens);
    const models::GenerationOutput out = model->generate(in, options);
    CHECK(out.sequences.equal(expected));
    options.use_cache = false;
    CHECK(model->generate(in, options).sequences.equal(expected));
    // The adapter matters: the base model generates something else.
    auto off = model->disable_adapters();
    options.use_cache = true;
    CHECK_FALSE(model->generate(in, options).sequences.equal(expected));
  }
}

TEST_CASE(
    "decoder adapters made by peftcpp load in peft with our logits and "
    "peft's completed config",
    "[peft][decoder][parity][save]") {
  uint64_t seed = 500;
  for (const Case& c : cases()) {
    ++seed;
    CAPTURE(c.name());
    // Only what a user would set; the rest is completed from the model.
    AdapterConfig config;
    config.task_type = c.causal() ? "CAUSAL_LM" : "SEQ_CLS";
    if (c.method == "lora") {
      peft::LoraConfig lora;
      lora.r = 4;
      config.method = lora;
    } else if (c.method == "dora") {
      peft::LoraConfig lora;
      lora.r = 4;
      lora.use_dora = true;
      lora.use_rslora = true;
      lora.target_modules = peft::ModuleSelector::list(
          {"q_proj", "k_proj", "o_proj", "down_proj"});
      config.method = lora;
    } else if (c.method == "ia3") {
      config.method = peft::Ia3Config{};
    } else if (c.method == "prompt") {
      peft::PromptTuningConfig prompt;
      prompt.num_virtual_tokens = 4;
      config.method = prompt;
    } else {
      peft::PrefixTuningConfig prefix;
      prefix.num_virtual_tokens = 3;
      config.method = prefix;
    }
    PeftModel model = load_base(c.model);
    model->add_adapter("default", config);
    torch::manual_seed(seed);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : model->parameters()) {
        if (p.requires_grad())
          p.add_(torch::randn_like(p) * 0.3);
      }
    }
    const models::StateDict refs = refs_of(c);
    const models::DecoderInputs in = inputs_of(refs, "left");
    testing::ScratchDir dir("peft_decoders_" + c.name());
    torch::NoGradGuard no_grad;
    const at::Tensor logits = model->forward(in);
    model->save_adapter(dir / "adapter");
    models::save_safetensors(dir / "ours.safetensors", {{"logits", logits}});
    models::save_safetensors(
        dir / "inputs.safetensors",
        {{"input_ids", in.input_ids}, {"attention_mask", in.attention_mask}});

    // The fields peft completes from the model, as peft wrote them.
    const nlohmann::json ours = read_json(dir / "adapter/adapter_config.json");
    const nlohmann::json theirs =
        read_json(fixture() / "adapters" / c.name() / "adapter_config.json");
    for (const char* key :
         {"peft_type", "task_type", "token_dim", "num_attention_heads",
          "num_layers", "fan_in_fan_out"}) {
      CAPTURE(key);
      CHECK(ours.contains(key) == theirs.contains(key));
      if (ours.contains(key) && theirs.contains(key))
        CHECK(ours.at(key) == theirs.at(key));
    }
    const auto names = [](const nlohmann::json& j) {
      return j.is_null() ? std::set<std::string>{}
                         : j.get<std::set<std::string>>();
    };
    // PEFT saves target_modules from a set (any order); for prompt methods
    // on SEQ_CLS it lists "classifier", "score" twice in modules_to_save
    // (PeftModelForSequenceClassification adds them in __init__ and again
    // in add_adapter), a repetition that means nothing and that we do not
    // copy.
    for (const char* key : {"target_modules", "modules_to_save"}) {
      CAPTURE(key);
      REQUIRE(ours.contains(key) == theirs.contains(key));
      if (theirs.contains(key))
        CHECK(names(ours.at(key)) == names(theirs.at(key)));
    }

    const auto r = testing::run_fixture_script(
        "check_peft_decoder_adapter.py",
        "--base '" + (fixture() / "models" / c.model).string() +
            "' --adapter '" + (dir / "adapter").string() + "' --inputs '" +
            (dir / "inputs.safetensors").string() + "' --expected '" +
            (dir / "ours.safetensors").string() + "'");
    INFO(r.output);
    CHECK(r.code == 0);
    std::printf("peftcpp -> peft %-16s %s", c.name().c_str(), r.output.c_str());
  }
}

TEST_CASE("prefix tuning on a GQA decoder has the key/value heads' shape",
          "[peft][decoder]") {
  PeftModel model = load_base("llama");
  AdapterConfig config;
  config.task_type = "CAUSAL_LM";
  peft::PrefixTuningConfig prefix;
  prefix.num_virtual_tokens = 5;
  config.method = prefix;
  model->add_adapter("default", config);
  const auto& completed = std::get<peft::PrefixTuningConfig>(
      model->adapter_config("default").method);
  // LLaMA tiny: hidden 32, 4 heads of 8, 2 key/value heads.
  CHECK(completed.num_attention_heads == 2);
  CHECK(completed.token_dim == 16);
  CHECK(completed.encoder_hidden_size == 16);
  CHECK(model->count_parameters().trainable == 5 * 2 * 2 * 16);
}

TEST_CASE("tied embeddings count once in the parameter report",
          "[peft][decoder]") {
  // GPT-2 ties lm_head to wte: PEFT (PyTorch's parameters()) counts the
  // shared tensor once.
  PeftModel model = load_base("gpt2");
  const models::DecoderConfig& c = model->decoder().config;
  REQUIRE(c.tie_word_embeddings);
  int64_t with_duplicates = 0;
  for (const auto& p : model->parameters())
    with_duplicates += p.numel();
  CHECK(model->count_parameters().total ==
        with_duplicates - c.vocab_size * c.hidden_size);
}

TEST_CASE("decoder PeftModels refuse what they cannot do, saying why",
          "[peft][decoder][errors]") {
  PeftModel lm = load_base("llama");
  AdapterConfig seq_cls;  // task_type SEQ_CLS by default
  seq_cls.method = peft::LoraConfig{};
  CHECK_THROWS_WITH(lm->add_adapter("a", seq_cls),
                    Catch::Contains("classification head") &&
                        Catch::Contains("LlamaForCausalLM"));
  // Bottleneck adapters go into the blocks' residual connections
  // (test_bottleneck_decoders.cpp), but one placed nowhere is refused.
  AdapterConfig bottleneck;
  bottleneck.task_type = "CAUSAL_LM";
  peft::BottleneckConfig nowhere;
  nowhere.mh_adapter = false;
  nowhere.output_adapter = false;
  bottleneck.method = nowhere;
  CHECK_THROWS_WITH(lm->add_adapter("b", bottleneck),
                    Catch::Contains("at least one place for the adapter") &&
                        Catch::Contains("on a model of 2 layers"));
  CHECK_THROWS_WITH(lm->base(), Catch::Contains("decoder"));
  CHECK_FALSE(lm->has_adapter("a"));
  CHECK_FALSE(lm->has_adapter("b"));

  PeftModel cls = load_base("llama_cls");
  AdapterConfig causal;
  causal.task_type = "CAUSAL_LM";
  causal.method = peft::LoraConfig{};
  CHECK_THROWS_WITH(cls->add_adapter("c", causal),
                    Catch::Contains("causal language model"));
  causal.task_type = "SEQ_CLS";
  cls->add_adapter("c", causal);
  models::GenerationInputs in;
  in.input_ids = torch::ones({1, 3}, torch::kLong);
  CHECK_THROWS_WITH(cls->generate(in, greedy_options(2)),
                    Catch::Contains("causal language model"));

  AdapterConfig prompt;
  prompt.task_type = "CAUSAL_LM";
  peft::PromptTuningConfig p;
  p.num_virtual_tokens = 2;
  prompt.method = p;
  lm->add_adapter("p", prompt);
  models::KeyValueCache cache(2);
  in.prefix = &cache;
  CHECK_THROWS_WITH(lm->generate(in, greedy_options(2)),
                    Catch::Contains("prefix and prompt_embeds"));
  models::DecoderInputs with_cache;
  with_cache.input_ids = in.input_ids;
  with_cache.cache = &cache;
  CHECK_THROWS_WITH(lm->forward(with_cache), Catch::Contains("no cache"));
}
