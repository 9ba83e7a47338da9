// The run configuration (YAML): every example config parses, overrides
// apply in order and take precedence over the file, mistakes are errors
// that name the key (with the closest one) at every level, and the
// fingerprint follows what shapes training and nothing else.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <variant>

#include "peft/adapter_config.h"
#include "peft/adapterhub_folder.h"
#include "tests/test_paths.h"
#include "trainers/run_config.h"

using namespace peftcpp;
using namespace peftcpp::trainers;
namespace fs = std::filesystem;

namespace {

const char* const kBase = R"(
model:
  path: /models/minilm
task:
  glue: sst2
  data_dir: glue/SST-2
method:
  peft_type: LORA
  r: 8
  lora_alpha: 16
  target_modules: [query, value]
trainer:
  learning_rate: 5.0e-4
  logging_steps: 10
output_dir: runs/sst2
)";

RunConfig parse(const std::string& yaml,
                const std::vector<std::string>& overrides = {}) {
  return parse_run_config(yaml, overrides, "/configs", "run config test.yaml");
}

RunConfig parse_base(const std::vector<std::string>& overrides = {}) {
  return parse(kBase, overrides);
}

std::vector<std::string> names(const std::vector<data::Metric>& metrics) {
  std::vector<std::string> out;
  for (data::Metric m : metrics)
    out.push_back(data::metric_name(m));
  return out;
}

const peft::LoraConfig& lora_of(const RunConfig& config) {
  return std::get<peft::LoraConfig>(config.method.method);
}

}  // namespace

TEST_CASE("every example config parses with model.path set on the side",
          "[trainers][run_config]") {
  const fs::path dir = fs::path(PEFTCPP_SOURCE_DIR) / "examples" / "configs";
  int parsed = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml")
      continue;
    INFO(entry.path().string());
    const RunConfig config =
        load_run_config(entry.path(), {"model.path=/models/minilm"});
    CHECK(config.model.path == fs::path("/models/minilm"));
    CHECK(config.trainer.output_dir.is_absolute());
    if (!config.task.glue.empty()) {
      // The GLUE recipes: the task's folder and a run folder beside them.
      CHECK(config.task.data_dir.is_absolute());
      CHECK(config.trainer.output_dir.parent_path() == dir / "runs");
      CHECK(config.trainer.per_device_train_batch_size == 32);
      CHECK(config.task.max_length == 128);
    } else {
      CHECK(config.task.train_file.is_absolute());
    }
    if (config.task.instruction) {
      // Instruction tuning (smollm2_*.yaml): a causal LM, scored by loss.
      CHECK(config.method.task_type == "CAUSAL_LM");
      CHECK(config.trainer.metric_for_best_model == "loss");
    } else {
      CHECK(config.method.task_type == "SEQ_CLS");
      CHECK_FALSE(config.trainer.metrics.empty());
    }
    // The saved text is a config of its own that means the same.
    const RunConfig again =
        parse_run_config(config.source_text, {}, "/elsewhere", "saved");
    CHECK(run_fingerprint(again) == run_fingerprint(config));
    CHECK(again.trainer.output_dir == config.trainer.output_dir);
    ++parsed;
  }
  CHECK(parsed >= 7);

  const RunConfig stsb = load_run_config(dir / "stsb_lora.yaml", {});
  CHECK(stsb.task.labels.kind == data::TaskKind::kRegression);
  CHECK(stsb.trainer.metric_for_best_model == "pearson");
  const RunConfig cola = load_run_config(dir / "cola_lora.yaml", {});
  CHECK(cola.trainer.metric_for_best_model == "matthews_correlation");
  const RunConfig bn = load_run_config(dir / "sst2_bottleneck.yaml", {});
  const auto& bottleneck = std::get<peft::BottleneckConfig>(bn.method.method);
  CHECK(bottleneck.architecture == "seq_bn");
  CHECK(bottleneck.reduction_factor == 16);
  CHECK(bottleneck.output_adapter);
  CHECK_FALSE(bottleneck.mh_adapter);
  const RunConfig prefix = load_run_config(dir / "sst2_prefix.yaml", {});
  CHECK(std::get<peft::PrefixTuningConfig>(prefix.method.method)
            .num_virtual_tokens == 20);
  CHECK(prefix.trainer.adamw.learning_rate == Approx(1e-2));
}

TEST_CASE("unset keys keep TrainerOptions' defaults and the task's metric",
          "[trainers][run_config]") {
  const RunConfig c = parse(R"(
model: {path: m}
task: {glue: MRPC, data_dir: d}
method: {peft_type: lora}
)");
  const TrainerOptions defaults;
  CHECK(c.model.path == fs::path("/configs/m"));
  CHECK(c.task.glue == "mrpc");
  CHECK(c.trainer.num_train_epochs == defaults.num_train_epochs);
  CHECK(c.trainer.adamw.learning_rate == defaults.adamw.learning_rate);
  CHECK(c.trainer.lr_scheduler_type == defaults.lr_scheduler_type);
  CHECK(c.trainer.seed == defaults.seed);
  CHECK(c.trainer.output_dir.empty());
  CHECK(c.trainer.metric_for_best_model == "accuracy");
  CHECK(c.trainer.greater_is_better);
  CHECK(names(c.trainer.metrics) == std::vector<std::string>{"accuracy", "f1"});
  CHECK(lora_of(c).r == 8);
  CHECK(c.method.task_type == "SEQ_CLS");
}

TEST_CASE("every trainer key is read under transformers' name",
          "[trainers][run_config]") {
  const RunConfig c = parse_base({
      "trainer.num_train_epochs=5",
      "trainer.max_steps=100",
      "trainer.batch_size=16",
      "trainer.per_device_eval_batch_size=8",
      "trainer.gradient_accumulation_steps=2",
      "trainer.weight_decay=0.01",
      "trainer.adam_beta1=0.8",
      "trainer.adam_beta2=0.99",
      "trainer.adam_epsilon=1e-6",
      "trainer.lr_scheduler_type=cosine",
      "trainer.warmup_steps=7",
      "trainer.warmup_ratio=0.1",
      "trainer.max_grad_norm=0",
      "trainer.precision=bfloat16",
      "trainer.device=cuda:1",
      "trainer.eval_steps=50",
      "trainer.metric_for_best_model=eval_loss",
      "trainer.early_stopping_patience=3",
      "trainer.load_best_model_at_end=false",
      "trainer.save_total_limit=4",
      "trainer.seed=7",
      "trainer.group_by_length=true",
      "trainer.on_non_finite_loss=skip",
  });
  const TrainerOptions& t = c.trainer;
  CHECK(t.num_train_epochs == 5);
  CHECK(t.max_steps == 100);
  CHECK(t.per_device_train_batch_size == 16);
  CHECK(t.per_device_eval_batch_size == 8);
  CHECK(t.gradient_accumulation_steps == 2);
  CHECK(t.adamw.weight_decay == Approx(0.01));
  CHECK(t.adamw.adam_beta1 == Approx(0.8));
  CHECK(t.adamw.adam_beta2 == Approx(0.99));
  CHECK(t.adamw.adam_epsilon == Approx(1e-6));
  CHECK(t.lr_scheduler_type == LrSchedule::kCosine);
  CHECK(t.warmup_steps == 7);
  CHECK(t.warmup_ratio == Approx(0.1));
  CHECK(t.max_grad_norm == 0);
  CHECK(t.precision == "bfloat16");
  CHECK(t.device == "cuda:1");
  CHECK(t.eval_steps == 50);
  CHECK(t.metric_for_best_model == "loss");
  CHECK_FALSE(t.greater_is_better);  // transformers' default for a loss
  CHECK(t.early_stopping_patience == 3);
  CHECK_FALSE(t.load_best_model_at_end);
  CHECK(t.save_total_limit == 4);
  CHECK(t.seed == 7);
  CHECK(t.group_by_length);
  CHECK(t.on_non_finite_loss == NonFiniteLoss::kSkip);
  CHECK(t.output_dir == fs::path("/configs/runs/sst2"));
}

TEST_CASE("overrides apply in order and win over the file",
          "[trainers][run_config]") {
  CHECK(parse_base().trainer.adamw.learning_rate == Approx(5e-4));
  CHECK(
      parse_base({"trainer.learning_rate=1e-3"}).trainer.adamw.learning_rate ==
      Approx(1e-3));
  CHECK(parse_base({"trainer.learning_rate=1e-3", "trainer.learning_rate=2e-3"})
            .trainer.adamw.learning_rate == Approx(2e-3));

  // Lists, mappings, new keys and whole sections.
  const RunConfig c = parse_base({"method.target_modules=[query,key,value]",
                                  "method.rank_pattern={query: 16}",
                                  "method.use_rslora=true", "trainer.seed=3"});
  CHECK(lora_of(c).target_modules.names ==
        std::vector<std::string>{"query", "key", "value"});
  CHECK(lora_of(c).rank_pattern.at("query") == 16);
  CHECK(lora_of(c).use_rslora);
  CHECK(c.trainer.seed == 3);
  const RunConfig bn = parse_base(
      {"method={peft_type: bottleneck, architecture: double_seq_bn}"});
  CHECK(std::get<peft::BottleneckConfig>(bn.method.method).mh_adapter);
  // A quoted value stays a string; a plain string regex is PEFT's regex form.
  CHECK(lora_of(parse_base({"method.target_modules=.*query"}))
            .target_modules.regex == std::optional<std::string>(".*query"));

  // An empty value is null: the default comes back.
  CHECK(parse_base({"trainer.learning_rate="}).trainer.adamw.learning_rate ==
        Approx(TrainerOptions{}.adamw.learning_rate));

  // Paths from the file resolve against its folder, from overrides against
  // the current folder (they were typed on a command line).
  CHECK(parse_base().task.data_dir == fs::path("/configs/glue/SST-2"));
  CHECK(parse_base({"task.data_dir=data/SST-2"}).task.data_dir ==
        (fs::current_path() / "data/SST-2").lexically_normal());
  CHECK(parse_base({"output_dir=/abs/run"}).trainer.output_dir ==
        fs::path("/abs/run"));

  // The saved text carries the overrides.
  const RunConfig saved = parse(parse_base({"trainer.seed=99"}).source_text);
  CHECK(saved.trainer.seed == 99);
}

TEST_CASE("an unknown key is an error at every level, with the closest key",
          "[trainers][run_config]") {
  const auto with = [](const std::string& extra_yaml, const std::string& at) {
    std::string yaml = kBase;
    const size_t pos = yaml.find(at);
    REQUIRE(pos != std::string::npos);
    yaml.insert(pos + at.size(), extra_yaml);
    return yaml;
  };
  REQUIRE_THROWS_MATCHES(
      parse(with("  learning_rat: 1e-3\n", "trainer:\n")),
      std::invalid_argument,
      Catch::Message(
          "[run config test.yaml:13] expected a key of section \"trainer\" "
          "(one of: num_train_epochs, max_steps, per_device_train_batch_size, "
          "batch_size, per_device_eval_batch_size, "
          "gradient_accumulation_steps, learning_rate, weight_decay, "
          "adam_beta1, adam_beta2, adam_epsilon, lr_scheduler_type, "
          "warmup_steps, warmup_ratio, max_grad_norm, precision, device, "
          "eval_steps, logging_steps, save_steps, metric_for_best_model, "
          "greater_is_better, early_stopping_patience, "
          "load_best_model_at_end, save_total_limit, seed, group_by_length, "
          "on_non_finite_loss), got \"learning_rat\" (hint: did you mean "
          "\"learning_rate\"?)"));
  REQUIRE_THROWS_WITH(
      parse(with("traner: {}\n", "output_dir: runs/sst2\n")),
      Catch::Contains("expected a top-level key (one of: model, task, "
                      "method, trainer, output_dir), got \"traner\"") &&
          Catch::Contains("did you mean \"trainer\"?"));
  REQUIRE_THROWS_WITH(parse(with("  pth: x\n", "model:\n")),
                      Catch::Contains("a key of section \"model\"") &&
                          Catch::Contains("did you mean \"path\"?"));
  REQUIRE_THROWS_WITH(parse(with("  max_lenght: 64\n", "task:\n")),
                      Catch::Contains("a key of section \"task\"") &&
                          Catch::Contains("did you mean \"max_length\"?"));
  // A key in the wrong section says where it belongs.
  REQUIRE_THROWS_WITH(
      parse(with("  learning_rate: 1e-3\n", "task:\n")),
      Catch::Contains("got \"learning_rate\" (hint: \"learning_rate\" "
                      "belongs in section \"trainer\")"));
  REQUIRE_THROWS_WITH(parse(with("  epochs: 3\n", "trainer:\n")),
                      Catch::Contains("did you mean \"num_train_epochs\"?"));
  // Inside the method: the method's own keys.
  REQUIRE_THROWS_AS(parse(with("  rr: 16\n", "method:\n")),
                    std::invalid_argument);
  REQUIRE_THROWS_WITH(
      parse(with("  rr: 16\n", "method:\n")),
      Catch::Contains("[run config test.yaml:8 method] "
                      "expected a key of the LORA config "
                      "(one of: alpha_pattern, ") &&
          Catch::Contains("got \"rr\" (hint: did you mean \"r\"?)"));
  REQUIRE_THROWS_WITH(
      parse(with("  reduction_factr: 8\n", "method:\n"),
            {"method.peft_type=BOTTLENECK",
             "method.r=", "method.lora_alpha=", "method.target_modules="}),
      Catch::Contains("expected a key of the BOTTLENECK config") &&
          Catch::Contains("did you mean \"reduction_factor\"?"));
  // A key given twice.
  REQUIRE_THROWS_WITH(parse(with("  seed: 1\n  seed: 2\n", "trainer:\n")),
                      Catch::Contains("got \"seed\" twice"));
}

TEST_CASE("an override of a key that does not exist is an error",
          "[trainers][run_config]") {
  REQUIRE_THROWS_AS(parse_base({"trainer.learning_rat=1e-3"}),
                    std::invalid_argument);
  REQUIRE_THROWS_WITH(
      parse_base({"trainer.learning_rat=1e-3"}),
      Catch::StartsWith("[run config test.yaml, override "
                        "\"trainer.learning_rat=1e-3\"] expected a key of "
                        "section \"trainer\"") &&
          Catch::Contains("did you mean \"learning_rate\"?"));
  REQUIRE_THROWS_WITH(parse_base({"modle.path=/m"}),
                      Catch::Contains("override \"modle.path=/m\"") &&
                          Catch::Contains("did you mean \"model\"?"));
  REQUIRE_THROWS_WITH(parse_base({"method.rr=4"}),
                      Catch::Contains("override \"method.rr=4\"") &&
                          Catch::Contains("got \"rr\""));
  REQUIRE_THROWS_WITH(
      parse_base({"trainer.learning_rate.x=1"}),
      Catch::Contains("expected trainer.learning_rate to be a section"));
  REQUIRE_THROWS_WITH(
      parse_base({"trainer.seed"}),
      Catch::Contains("expected section.key=value, got \"trainer.seed\""));
  REQUIRE_THROWS_WITH(parse_base({"method.target_modules=[query"}),
                      Catch::Contains("expected a YAML value"));
}

TEST_CASE("bad values are errors that name the key", "[trainers][run_config]") {
  REQUIRE_THROWS_MATCHES(
      parse_base({"trainer.per_device_train_batch_size=-3"}),
      std::invalid_argument,
      Catch::Message(
          "[run config test.yaml, override "
          "\"trainer.per_device_train_batch_size=-3\"] expected "
          "trainer.per_device_train_batch_size to be a positive integer, got "
          "-3"));
  const auto fails = [](const std::vector<std::string>& overrides,
                        const std::string& text) {
    INFO(overrides.front());
    REQUIRE_THROWS_WITH(parse_base(overrides), Catch::Contains(text));
  };
  fails({"trainer.learning_rate=fast"},
        "expected trainer.learning_rate to be a positive number, got \"fast\"");
  fails({"trainer.learning_rate=0"}, "trainer.learning_rate to be a positive");
  fails({"trainer.num_train_epochs=2.5"}, "fractional epochs: use max_steps");
  fails({"trainer.lr_scheduler_type=step"},
        "expected trainer.lr_scheduler_type to be one of linear, cosine, "
        "constant, constant_with_warmup, got \"step\"");
  fails({"trainer.precision=fp8"}, "trainer.precision to be one of float32");
  fails({"trainer.precision=float16"}, "loss scaling, not implemented yet");
  fails({"trainer.device=gpu"}, "trainer.device to be cpu, cuda or cuda:N");
  fails({"trainer.metric_for_best_model=f1"},
        "expected trainer.metric_for_best_model to be one of the task's "
        "metrics (loss, accuracy), got \"f1\"");
  fails({"trainer.warmup_ratio=1.5"}, "trainer.warmup_ratio to be a number in");
  fails({"trainer.seed=-1"}, "trainer.seed to be an integer");
  fails({"trainer.group_by_length=maybe"}, "to be true or false");
  fails({"trainer.on_non_finite_loss=ignore"}, "to be stop or skip");
  fails({"trainer.batch_size=8", "trainer.per_device_train_batch_size=8"},
        "batch_size is its short name");
  fails({"task.glue=sst3"},
        "expected task.glue to be a GLUE task (one of "
        "cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, "
        "wnli), got \"sst3\"");
  fails({"task.glue="},
        "expected task.glue (a GLUE task) or task.train_file "
        "(your own TSV/CSV/JSONL), got neither");
  fails({"task.data_dir="}, "expected task.data_dir to be the GLUE task's");
  fails({"task.train_file=t.tsv"},
        "task.train_file to be left out with "
        "task.glue");
  fails({"task.max_length=0"}, "task.max_length to be a positive integer");
  fails({"task.max_train_examples=0"}, "-1 (all) or a positive integer");
  fails({"task.metrics=[pearson]"}, "does not fit a classification task");
  fails({"task.task_type=regression"},
        "task.task_type to be classification "
        "for GLUE sst2");
  fails({"model.path="},
        "expected model.path to be a Hugging Face model "
        "folder, got nothing");
  fails({"model.dtype=int8"}, "model.dtype to be one of float32");
  fails({"method.r=abc"}, "expected \"r\" to be an integer, got \"abc\"");
  fails({"method.peft_type=adalora"}, "peft_type");
  fails({"method.task_type=CAUSAL_LM"}, "method.task_type SEQ_CLS");
  fails({"method.use_qalora=true"},
        "expected \"use_qalora\" at its default false, got true");
  fails({"method={peft_type: bottleneck, phm_layer: true}"},
        "expected \"phm_layer\" at its default false, got true");
  fails({"method={peft_type: bottleneck, architecture: lora}"},
        "double_seq_bn");
  fails({"trainer=5"}, "expected section \"trainer\" to be a mapping");
  // Without a method there is nothing to train.
  REQUIRE_THROWS_WITH(parse("model: {path: m}\ntask: {glue: rte, data_dir: "
                            "d}\n"),
                      Catch::Contains("expected a \"method\" section"));
}

TEST_CASE("own data files: columns, labels and task type",
          "[trainers][run_config]") {
  const std::string own = R"(
model: {path: /m}
task:
  train_file: data/train.csv
  eval_file: data/dev.csv
  text_column: review
  text_pair_column: title
  label_column: stars
  has_header: false
  labels: [bad, good]
  max_train_examples: 100
method: {peft_type: LORA}
)";
  const RunConfig c = parse(own);
  CHECK(c.task.glue.empty());
  CHECK(c.task.train_file == fs::path("/configs/data/train.csv"));
  CHECK(c.task.eval_file == fs::path("/configs/data/dev.csv"));
  CHECK(c.task.format == data::TableFormat::kAuto);
  CHECK(c.task.columns.text == "review");
  CHECK(c.task.columns.text_pair == std::optional<std::string>("title"));
  CHECK(c.task.columns.label == "stars");
  CHECK_FALSE(c.task.columns.has_header);
  CHECK(c.task.labels.label_names == std::vector<std::string>{"bad", "good"});
  CHECK(c.task.max_train_examples == 100);
  CHECK(c.trainer.metric_for_best_model == "accuracy");

  const RunConfig r = parse(
      own, {"task.task_type=regression", "task.labels=", "task.format=csv"});
  CHECK(r.task.labels.kind == data::TaskKind::kRegression);
  CHECK(r.task.format == data::TableFormat::kCsv);
  CHECK(r.trainer.metric_for_best_model == "pearson");
  CHECK(names(r.trainer.metrics) ==
        std::vector<std::string>{"pearson", "spearmanr"});
  REQUIRE_THROWS_WITH(parse(own, {"task.task_type=regression"}),
                      Catch::Contains("task.labels to be left out for a "
                                      "regression task"));
  REQUIRE_THROWS_WITH(parse(own, {"task.format=xlsx"}),
                      Catch::Contains("task.format to be one of auto, tsv"));
  REQUIRE_THROWS_WITH(parse(own, {"task.data_dir=d"}),
                      Catch::Contains("task.data_dir to be left out without "
                                      "task.glue"));
}

TEST_CASE("a YAML syntax error names the file, line and column",
          "[trainers][run_config]") {
  REQUIRE_THROWS_AS(
      parse("model:\n  path: /m\ntask: {glue: sst2, data_dir: d\nmethod: x\n"),
      std::runtime_error);
  REQUIRE_THROWS_WITH(
      parse("model:\n  path: /m\ntask: {glue: sst2, data_dir: d\nmethod: x\n"),
      Catch::StartsWith("[run config test.yaml:") &&
          Catch::Contains("expected valid YAML"));
  try {
    parse("model:\n  path: [a, b\ntrainer: {}\n");
    FAIL("no error");
  } catch (const std::runtime_error& e) {
    CHECK_THAT(e.what(), Catch::StartsWith("[run config test.yaml:3:"));
  }
  REQUIRE_THROWS_WITH(parse("- a\n- b\n"),
                      Catch::Contains("expected a mapping of sections"));
}

TEST_CASE("load_run_config reads a file and resolves against its folder",
          "[trainers][run_config]") {
  testing::ScratchDir dir("run_config");
  fs::create_directories(dir / "conf");
  {
    std::ofstream out(dir / "conf" / "run.yaml");
    out << kBase;
  }
  const RunConfig c = load_run_config(dir / "conf" / "run.yaml", {});
  CHECK(c.task.data_dir == dir / "conf" / "glue" / "SST-2");
  CHECK(c.trainer.output_dir == dir / "conf" / "runs" / "sst2");
  REQUIRE_THROWS_AS(load_run_config(dir / "missing.yaml", {}),
                    std::runtime_error);
  {
    std::ofstream out(dir / "conf" / "bad.yaml");
    out << kBase << "trainer:\n  seed: 1\n";
  }
  REQUIRE_THROWS_WITH(load_run_config(dir / "conf" / "bad.yaml", {}),
                      Catch::Contains("bad.yaml:16] expected each key once") &&
                          Catch::Contains("\"trainer\" twice"));
}

TEST_CASE("the fingerprint follows what shapes training and nothing else",
          "[trainers][run_config]") {
  const std::string base = run_fingerprint(parse_base());
  CHECK(base.size() == 16);
  CHECK(base.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(run_fingerprint(parse_base()) == base);  // stable

  for (const char* shaping :
       {"trainer.learning_rate=1e-3", "trainer.seed=1", "trainer.batch_size=16",
        "trainer.gradient_accumulation_steps=2",
        "trainer.lr_scheduler_type=cosine", "trainer.warmup_ratio=0.1",
        "trainer.num_train_epochs=4", "trainer.precision=bfloat16",
        "task.data_dir=/other/SST-2", "task.max_length=64",
        "task.max_train_examples=1000", "task.glue=cola", "model.path=/other",
        "model.dtype=bfloat16", "method.r=16", "method.lora_dropout=0.1",
        "method.target_modules=[query,key,value]", "method.peft_type=ia3"}) {
    INFO(shaping);
    std::vector<std::string> overrides = {shaping};
    if (std::string(shaping) == "method.peft_type=ia3")
      overrides = {"method={peft_type: IA3}"};
    CHECK(run_fingerprint(parse_base(overrides)) != base);
  }
  for (const char* neutral :
       {"trainer.logging_steps=1", "output_dir=/elsewhere",
        "trainer.eval_steps=5", "trainer.save_total_limit=9",
        "trainer.early_stopping_patience=2", "trainer.device=cuda",
        "trainer.per_device_eval_batch_size=7", "task.cache_dir=/cache",
        "trainer.load_best_model_at_end=false", "model.threads=3"}) {
    INFO(neutral);
    CHECK(run_fingerprint(parse_base({neutral})) == base);
  }
  // The same folder written another way is the same model.
  CHECK(run_fingerprint(parse_base({"model.path=/models/../models/minilm"})) ==
        base);
}

TEST_CASE("the strict method reader and the lenient adapter_config.json reader",
          "[trainers][run_config][peft]") {
  // adapter_config.json files from disk stay lenient: PEFT's newer fields
  // and unknown keys are ignored.
  const auto lenient = peft::parse_adapter_config(
      R"({"peft_type": "LORA", "r": 4, "some_future_field": 1})", "file");
  CHECK(std::get<peft::LoraConfig>(lenient.method).r == 4);
  REQUIRE_THROWS_AS(
      peft::parse_adapter_config_strict(
          R"({"peft_type": "LORA", "r": 4, "some_future_field": 1})", "yaml"),
      std::invalid_argument);
  REQUIRE_THROWS_WITH(
      peft::parse_adapter_config_strict(
          R"({"peft_type": "LORA", "r": 4, "some_future_field": 1})", "yaml"),
      Catch::StartsWith("[yaml] expected a key of the LORA "
                        "config (one of: alpha_pattern") &&
          Catch::Contains("got \"some_future_field\""));
  // What PEFT writes round-trips through the strict reader, for every
  // PEFT method (fields peftcpp does not implement are at their defaults).
  for (const char* type :
       {"LORA", "IA3", "PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING"}) {
    INFO(type);
    const auto config = peft::parse_adapter_config(
        std::string(R"({"peft_type": ")") + type + "\"}", "defaults");
    const std::string written = peft::adapter_config_to_json(config);
    CHECK(peft::adapter_config_to_json(peft::parse_adapter_config_strict(
              written, "written")) == written);
  }
  const auto prefix = peft::parse_adapter_config_strict(
      R"({"peft_type": "prefix-tuning", "num_virtual_tokens": 5})", "yaml");
  CHECK(prefix.peft_type() == peft::PeftType::kPrefixTuning);
  const auto keys = peft::adapter_config_keys(peft::PeftType::kBottleneck);
  CHECK(std::find(keys.begin(), keys.end(), "architecture") != keys.end());
  CHECK(std::find(keys.begin(), keys.end(), "reduction_factor") != keys.end());
  CHECK(std::find(keys.begin(), keys.end(), "task_type") != keys.end());
  CHECK(std::find(keys.begin(), keys.end(), "phm_layer") == keys.end());
}

TEST_CASE("every adapter_config.json HF PEFT wrote passes the strict reader",
          "[trainers][run_config][peft]") {
  // A config copied from Python into a training YAML must work as is.
  const fs::path dir = testing::fixture_dir() / "peft";
  if (!fs::is_directory(dir)) {
    WARN("no PEFT fixtures in " + dir.string() + ": skipped");
    return;
  }
  int checked = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.path().filename() != "adapter_config.json")
      continue;
    INFO(entry.path().string());
    std::ifstream in(entry.path());
    const std::string text((std::istreambuf_iterator<char>(in)),
                           std::istreambuf_iterator<char>());
    const auto lenient = peft::parse_adapter_config(text, "lenient");
    const auto strict = peft::parse_adapter_config_strict(text, "strict");
    CHECK(peft::adapter_config_to_json(strict) ==
          peft::adapter_config_to_json(lenient));
    ++checked;
  }
  CHECK(checked > 0);

  // AdapterHub's saved BnConfigs, as a BOTTLENECK method.
  // (Absent when the adapters venv could not be made: generate_all says why.)
  const fs::path bn_dir = testing::fixture_dir() / "bottleneck";
  if (!fs::is_directory(bn_dir))
    return;
  for (const auto& entry : fs::recursive_directory_iterator(bn_dir)) {
    if (entry.path().filename() != "adapter_config.json")
      continue;
    INFO(entry.path().string());
    std::ifstream in(entry.path());
    const auto saved = nlohmann::json::parse(in);
    nlohmann::json method = saved.at("config");
    method["peft_type"] = "BOTTLENECK";
    const auto strict =
        peft::parse_adapter_config_strict(method.dump(), "strict");
    CHECK(peft::bottleneck_config_to_json(
              std::get<peft::BottleneckConfig>(strict.method)) ==
          peft::bottleneck_config_to_json(peft::parse_bottleneck_config(
              saved.at("config").dump(), "lenient")));
    ++checked;
  }
}
