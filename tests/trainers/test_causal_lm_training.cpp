// Causal-LM fine-tuning in the shared Trainer: the loss against
// transformers' model(input_ids, labels=...).loss on tiny LLaMA and GPT-2
// models with SmolLM2's tokenizer (tests/fixtures/make_causal_lm_train.py),
// the loss's corner cases (prompt tuning's virtual tokens, no targets), and
// a short LoRA run on SST-2 instructions that lowers the held-out loss and
// writes an adapter HF PEFT loads with the same logits.

#include <ATen/ATen.h>
#include <torch/torch.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

#include "data/dataset/collate.h"
#include "data/dataset/instruction_dataset.h"
#include "models/checkpoint/safetensors.h"
#include "models/decoder/load_decoder.h"
#include "peft/adapter_config.h"
#include "tests/test_paths.h"
#include "trainers/peft_causal_lm.h"
#include "trainers/trainer.h"

namespace fs = std::filesystem;
using namespace peftcpp;

namespace {

fs::path fixture(const std::string& name) {
  return testing::fixture_dir() / "causal_lm_train" / name;
}

int64_t eos_id() {
  std::ifstream in(fixture("refs/rows.json"));
  return nlohmann::json::parse(in).at("eos_token_id").get<int64_t>();
}

data::TokenizedDataset plain_rows(const std::string& file, size_t n,
                                  const data::Tokenizer& tokenizer) {
  data::InstructionDataset d = data::read_instruction_jsonl(fixture(file));
  if (n < d.size())
    d.examples.resize(n);
  data::InstructionFormat f;
  f.eos_token_id = eos_id();
  return data::tokenize_instructions(d, tokenizer, f, {});
}

peft::PeftModel lora_model(const std::string& name) {
  const std::string targets =
      name == "gpt2" ? R"(["c_attn"])" : R"(["q_proj", "v_proj"])";
  peft::AdapterConfig config = peft::parse_adapter_config_strict(
      R"({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 8,
          "lora_alpha": 16, "target_modules": )" +
          targets + "}",
      "test");
  config.base_model_name_or_path = fixture("models/" + name).string();
  torch::manual_seed(0);
  peft::PeftModel model(models::load_decoder(fixture("models/" + name)));
  model->add_adapter("default", config);
  return model;
}

}  // namespace

TEST_CASE(
    "the causal-LM loss of a collated instruction batch equals "
    "transformers' model(input_ids, labels=labels).loss",
    "[trainers][causal_lm]") {
  const auto name = GENERATE(as<std::string>{}, "llama", "gpt2");
  INFO(name);
  auto ref = models::SafetensorsFile::open(
      fixture("refs/" + name + "_loss.safetensors"));
  const at::Tensor hf_loss = ref->tensor("loss");
  // The loss function alone, on transformers' own logits.
  CHECK(trainers::causal_lm_loss(ref->tensor("logits"), ref->tensor("labels"))
            .item<double>() == Approx(hf_loss.item<double>()).epsilon(1e-6));

  // Our tokenization and collation give transformers' batch ...
  const auto tokenizer =
      data::Tokenizer::from_pretrained(fixture("models/" + name));
  const data::TokenizedDataset rows =
      plain_rows("data/plain_train.jsonl", 4, tokenizer);
  const data::Batch batch = data::collate(rows, {0, 1, 2, 3}, eos_id());
  REQUIRE(batch.input_ids.equal(ref->tensor("input_ids")));
  REQUIRE(batch.attention_mask.equal(ref->tensor("attention_mask")));
  REQUIRE(batch.labels.equal(ref->tensor("labels")));
  // ... and our model's loss on it is transformers'.
  peft::PeftModel model = lora_model(name);
  trainers::PeftCausalLM lm(model);
  lm.set_training(false);
  at::NoGradGuard no_grad;
  const at::Tensor loss =
      trainers::causal_lm_loss(lm.forward(batch), batch.labels);
  CHECK(loss.item<double>() == Approx(hf_loss.item<double>()).epsilon(1e-5));
}

TEST_CASE(
    "the loss ignores prompt tuning's virtual tokens and is 0 without "
    "targets",
    "[trainers][causal_lm]") {
  torch::manual_seed(1);
  const at::Tensor logits = torch::randn({2, 3 + 5, 11});
  at::Tensor labels = torch::randint(0, 11, {2, 5});
  labels.index_put_({0, 0}, -100);
  // PEFT: P = 3 labels of -100 in front, then the usual shift.
  const at::Tensor tail = logits.slice(1, 3);
  const at::Tensor expected = at::cross_entropy_loss(
      tail.slice(1, 0, 4).reshape({-1, 11}), labels.slice(1, 1).reshape({-1}),
      {}, at::Reduction::Mean, -100);
  const trainers::CausalLMLossSum s =
      trainers::causal_lm_loss_sum(logits, labels);
  // Position 2 (the last virtual token) predicts label 0 of row 1.
  CHECK(s.tokens == 2 * 4 + 1);
  const at::Tensor first =
      at::cross_entropy_loss(logits.slice(1, 2, 3)[1], labels.slice(1, 0, 1)[1],
                             {}, at::Reduction::Sum, -100);
  CHECK(s.sum.item<double>() ==
        Approx(expected.item<double>() * 8 + first.item<double>()));

  const at::Tensor w = torch::randn({2, 4, 11}, torch::requires_grad());
  const at::Tensor none = torch::full({2, 4}, -100, torch::kLong);
  const at::Tensor zero = trainers::causal_lm_loss(w, none);
  CHECK(zero.item<double>() == 0.0);
  zero.backward();
  CHECK(w.grad().abs().sum().item<double>() == 0.0);

  CHECK_THROWS_WITH(
      trainers::causal_lm_loss(torch::zeros({2, 3, 5}), torch::zeros({2, 4})),
      Catch::Contains("expected logits [B, T, V] (or [B, P + T, V]) and "
                      "labels [B, T], got logits [2, 3, 5] and labels [2, 4]"));
}

TEST_CASE(
    "LoRA instruction tuning in the Trainer lowers the held-out loss and "
    "saves an adapter that HF PEFT loads with the same logits",
    "[trainers][causal_lm][slow]") {
  const auto name = GENERATE(as<std::string>{}, "llama", "gpt2");
  INFO(name);
  testing::ScratchDir tmp("causal_lm_train_" + name);
  const auto tokenizer =
      data::Tokenizer::from_pretrained(fixture("models/" + name));
  const data::TokenizedDataset train =
      plain_rows("data/plain_train.jsonl", 96, tokenizer);
  const data::TokenizedDataset dev =
      plain_rows("data/plain_dev.jsonl", 32, tokenizer);

  peft::PeftModel model = lora_model(name);
  trainers::PeftCausalLM lm(model);
  trainers::TrainerOptions o;
  o.output_dir = tmp / "run";
  o.num_train_epochs = 3;
  o.per_device_train_batch_size = 8;
  o.per_device_eval_batch_size = 16;
  o.adamw.learning_rate = 2e-2;
  o.show_progress = false;
  o.load_best_model_at_end = false;  // the adapter = the weights in memory
  trainers::Trainer trainer(lm, train, &dev, o, "test", eos_id());
  const trainers::EvalResult before = trainer.evaluate(dev);
  const trainers::TrainResult result = trainer.train();
  const trainers::EvalResult after = trainer.evaluate(dev);
  const double loss_before = before.metrics.at("loss");
  const double loss_after = after.metrics.at("loss");
  INFO("held-out loss " << loss_before << " -> " << loss_after);
  CHECK(loss_after < loss_before - 1.0);
  CHECK(after.metrics.at("perplexity") == Approx(std::exp(loss_after)));
  CHECK(result.best_eval->metrics.at("loss") <= loss_after);
  // Only LoRA weights train: r * (in + out) per target, 2 layers (LLaMA's
  // v_proj has 2 key/value heads of 4: 8 outputs).
  const int64_t per_layer =
      name == "gpt2" ? 8 * (16 + 48) : 8 * (16 + 16) + 8 * (16 + 8);
  CHECK(result.trainable_parameters == 2 * per_layer);

  // The adapter in Python: PeftModel.from_pretrained, same logits.
  const fs::path adapter = result.adapter_dir;
  std::ifstream cfg(adapter / "adapter_config.json");
  CHECK(nlohmann::json::parse(cfg).at("task_type") == "CAUSAL_LM");
  const data::Batch batch = data::collate(dev, {0, 1, 2}, eos_id());
  lm.set_training(false);
  at::Tensor logits;
  {
    at::NoGradGuard no_grad;
    logits = lm.forward(batch);
  }
  models::save_safetensors(tmp / "inputs.safetensors",
                           {{"input_ids", batch.input_ids},
                            {"attention_mask", batch.attention_mask}});
  models::save_safetensors(tmp / "ours.safetensors", {{"logits", logits}});
  const auto r = testing::run_fixture_script(
      "check_peft_decoder_adapter.py",
      "--base '" + fixture("models/" + name).string() + "' --adapter '" +
          adapter.string() + "' --inputs '" +
          (tmp / "inputs.safetensors").string() + "' --expected '" +
          (tmp / "ours.safetensors").string() + "' --tol 1e-4");
  INFO(r.output);
  CHECK(r.code == 0);
}
