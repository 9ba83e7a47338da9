// The task and trainer sections of the run config: every key of
// TaskSection and TrainerOptions under transformers' / the table loader's
// names, each value checked where it is read.

#include <algorithm>
#include <cmath>
#include <optional>
#include <stdexcept>

#include "common/error.h"
#include "data/dataset/glue.h"
#include "trainers/lr_schedule.h"
#include "trainers/run_config.h"
#include "trainers/run_config_reader.h"

namespace peftcpp::trainers::detail {
namespace {

// -1 (all) or a positive count.
bool is_subset_size(int64_t n) {
  return n == -1 || n > 0;
}

// packing, prompt_template, label_completions and use_chat_template: only
// with task_type instruction; the last two need prompt_template.
void read_instruction_keys(const Section& s, TaskSection& t) {
  for (const char* key : {"packing", "prompt_template", "label_completions",
                          "use_chat_template"}) {
    if (!t.instruction && s.has(key)) {
      s.fail(key, "left out unless task.task_type is instruction",
             "set task_type: instruction to fine-tune a causal LM");
    }
  }
  s.read("packing", t.packing);
  data::InstructionTemplate& f = t.instruction_template;
  f.prompt.clear();
  s.read(
      "prompt_template", f.prompt,
      [](const std::string& v) { return !v.empty(); },
      "a prompt with {text} (and {text_pair})");
  if (const auto completions = s.list("label_completions"))
    f.completions = *completions;
  s.read("use_chat_template", f.as_chat);
  if (f.prompt.empty()) {
    for (const char* key : {"label_completions", "use_chat_template"}) {
      if (s.has(key)) {
        s.fail(key, "given with prompt_template",
               "it phrases labelled rows; instruction JSONL needs neither");
      }
    }
  } else if (f.completions.empty()) {
    s.fail("label_completions", "one completion per class, in label order",
           "e.g. label_completions: [\" negative\", \" positive\"]");
  }
  if (t.instruction && !t.glue.empty() && f.prompt.empty()) {
    s.fail("prompt_template", "a prompt for the GLUE rows",
           "e.g. prompt_template: \"Review: {text}\\nSentiment:\"");
  }
}

}  // namespace

void read_task(const Section& s, TaskSection& t) {
  s.check_keys(run_config_keys("task"), "a key of section \"task\"");
  if (const auto glue = s.text("glue")) {
    std::vector<std::string> names;
    for (const auto& task : data::glue_tasks())
      names.push_back(task.name);
    try {
      t.glue = data::glue_task(*glue).name;
    } catch (const std::out_of_range&) {
      s.fail("glue", "a GLUE task (one of " + join_names(names) + ")",
             "or leave glue out and give train_file for your own data");
    }
  }
  s.read_path("data_dir", t.data_dir);
  s.read_path("train_file", t.train_file);
  s.read_path("eval_file", t.eval_file);
  s.read_path("cache_dir", t.cache_dir);
  if (const auto format = s.text("format")) {
    try {
      t.format = data::parse_table_format(*format);
    } catch (const std::invalid_argument&) {
      s.fail("format", "one of auto, tsv, csv, jsonl");
    }
  }
  const auto non_empty = [](const std::string& v) { return !v.empty(); };
  s.read("text_column", t.columns.text, non_empty, "a column name");
  s.read("label_column", t.columns.label, non_empty, "a column name");
  if (const auto pair = s.text("text_pair_column"); pair && !pair->empty())
    t.columns.text_pair = *pair;
  s.read("has_header", t.columns.has_header);
  std::string kind = "classification";
  s.read(
      "task_type", kind,
      [](const std::string& v) {
        return v == "classification" || v == "regression" || v == "instruction";
      },
      "classification, regression or instruction (a causal LM learning "
      "completions)");
  t.labels.kind = kind == "regression" ? data::TaskKind::kRegression
                                       : data::TaskKind::kClassification;
  t.instruction = kind == "instruction";
  read_instruction_keys(s, t);
  if (const auto labels = s.list("labels"))
    t.labels.label_names = *labels;
  s.read(
      "max_length", t.max_length, [](int64_t v) { return v > 0; },
      "a positive integer");
  s.read("max_train_examples", t.max_train_examples, is_subset_size,
         "-1 (all) or a positive integer");
  s.read("max_eval_examples", t.max_eval_examples, is_subset_size,
         "-1 (all) or a positive integer");

  if (!t.glue.empty()) {
    // A GLUE task knows its files, columns and labels: own-file keys
    // would be ignored, so they are refused.
    for (const char* key :
         {"train_file", "eval_file", "format", "text_column",
          "text_pair_column", "label_column", "has_header", "labels"}) {
      if (s.has(key)) {
        s.fail(key, "left out with task.glue",
               "GLUE tasks have their own files, columns and labels");
      }
    }
    const data::GlueTask& task = data::glue_task(t.glue);
    if (s.has("task_type") && !t.instruction && t.labels.kind != task.kind) {
      s.fail("task_type", std::string(task.kind == data::TaskKind::kRegression
                                          ? "regression"
                                          : "classification") +
                              " for GLUE " + t.glue);
    }
    t.labels.kind = task.kind;
    if (t.data_dir.empty()) {
      s.fail("data_dir", "the GLUE task's folder or the GLUE root holding it",
             "e.g. task.data_dir=glue/" + task.folder);
    }
  } else {
    if (t.train_file.empty()) {
      throw std::invalid_argument(
          error_message(s.location(),
                        "task.glue (a GLUE task) or task.train_file (your "
                        "own TSV/CSV/JSONL)",
                        "neither"));
    }
    if (s.has("data_dir")) {
      s.fail("data_dir", "left out without task.glue",
             "own data is named by train_file and eval_file");
    }
    if (t.labels.kind == data::TaskKind::kRegression &&
        !t.labels.label_names.empty())
      s.fail("labels", "left out for a regression task");
    if (t.instruction && t.instruction_template.prompt.empty()) {
      // Instruction JSONL brings its own fields.
      for (const char* key : {"format", "text_column", "text_pair_column",
                              "label_column", "has_header", "labels"}) {
        if (s.has(key)) {
          s.fail(key, "left out for instruction JSONL files",
                 "or give prompt_template and label_completions to phrase a "
                 "labelled table as instructions");
        }
      }
    }
  }
  if (t.instruction && s.has("metrics")) {
    s.fail("metrics", "left out for task_type instruction",
           "instruction tuning reports the held-out loss and perplexity");
  }
  if (const auto metrics = s.list("metrics")) {
    const bool regression = t.labels.kind == data::TaskKind::kRegression;
    for (const auto& name : *metrics) {
      std::optional<data::Metric> metric;
      try {
        metric = data::parse_metric(name);
      } catch (const std::invalid_argument&) {
      }
      const bool fits =
          metric && (regression == (*metric == data::Metric::kPearson ||
                                    *metric == data::Metric::kSpearman));
      if (!fits) {
        s.fail("metrics",
               regression ? "a list of pearson, spearmanr"
                          : "a list of accuracy, f1, matthews_correlation",
               "\"" + name + "\" does not fit a " +
                   (regression ? "regression" : "classification") + " task");
      }
      t.metrics.push_back(name);
    }
  }
}

void read_trainer(const Section& s, const TaskSection& task,
                  TrainerOptions& t) {
  s.check_keys(run_config_keys("trainer"), "a key of section \"trainer\"");
  const auto positive = [](int64_t v) { return v > 0; };
  const auto at_least_0 = [](int64_t v) { return v >= 0; };
  s.read("num_train_epochs", t.num_train_epochs, positive,
         "a positive integer (fractional epochs: use max_steps)");
  s.read(
      "max_steps", t.max_steps, [](int64_t v) { return v == -1 || v > 0; },
      "-1 (train num_train_epochs) or a positive integer");
  if (s.has("batch_size") && s.has("per_device_train_batch_size")) {
    s.fail("batch_size", "left out with per_device_train_batch_size",
           "batch_size is its short name; give one of them");
  }
  s.read("per_device_train_batch_size", t.per_device_train_batch_size, positive,
         "a positive integer");
  s.read("batch_size", t.per_device_train_batch_size, positive,
         "a positive integer");
  s.read("per_device_eval_batch_size", t.per_device_eval_batch_size, positive,
         "a positive integer");
  s.read("gradient_accumulation_steps", t.gradient_accumulation_steps, positive,
         "a positive integer");
  const auto positive_number = [](double v) {
    return v > 0 && std::isfinite(v);
  };
  const auto beta = [](double v) { return v >= 0 && v < 1; };
  s.read("learning_rate", t.adamw.learning_rate, positive_number,
         "a positive number");
  s.read(
      "weight_decay", t.adamw.weight_decay,
      [](double v) { return v >= 0 && std::isfinite(v); }, "a number >= 0");
  s.read("adam_beta1", t.adamw.adam_beta1, beta, "a number in [0, 1)");
  s.read("adam_beta2", t.adamw.adam_beta2, beta, "a number in [0, 1)");
  s.read("adam_epsilon", t.adamw.adam_epsilon, positive_number,
         "a positive number");
  if (const auto name = s.text("lr_scheduler_type")) {
    try {
      t.lr_scheduler_type = parse_lr_schedule(*name);
    } catch (const std::invalid_argument&) {
      s.fail("lr_scheduler_type",
             "one of linear, cosine, constant, constant_with_warmup");
    }
  }
  s.read("warmup_steps", t.warmup_steps, at_least_0,
         "an integer >= 0 (wins over warmup_ratio when > 0)");
  s.read(
      "warmup_ratio", t.warmup_ratio, [](double v) { return v >= 0 && v <= 1; },
      "a number in [0, 1]");
  s.read(
      "max_grad_norm", t.max_grad_norm,
      [](double v) { return std::isfinite(v); },
      "a number (<= 0: no clipping)");
  s.read("precision", t.precision, is_precision,
         "one of float32, bfloat16, float16");
  s.read(
      "device", t.device,
      [](const std::string& v) {
        return v == "cpu" || v == "cuda" ||
               (v.rfind("cuda:", 0) == 0 &&
                to_int(v.substr(5)).value_or(-1) >= 0);
      },
      "cpu, cuda or cuda:N");
  if (t.precision == "float16") {
    s.fail("precision", "float32 or bfloat16",
           "float16 (its training needs loss scaling, not implemented yet)");
  }
  s.read("eval_steps", t.eval_steps, at_least_0,
         "an integer >= 0 (0: evaluate at each epoch's end only)");
  s.read("logging_steps", t.logging_steps, positive, "a positive integer");
  s.read("save_steps", t.save_steps, at_least_0,
         "an integer >= 0 (0: checkpoints at evaluations only)");
  s.read("early_stopping_patience", t.early_stopping_patience, at_least_0,
         "an integer >= 0 (0: never stop early)");
  s.read("load_best_model_at_end", t.load_best_model_at_end);
  s.read("save_total_limit", t.save_total_limit, positive,
         "a positive integer");
  s.read("seed", t.seed);
  s.read("group_by_length", t.group_by_length);
  std::string non_finite = "stop";
  s.read(
      "on_non_finite_loss", non_finite,
      [](const std::string& v) { return v == "stop" || v == "skip"; },
      "stop or skip");
  t.on_non_finite_loss =
      non_finite == "skip" ? NonFiniteLoss::kSkip : NonFiniteLoss::kStop;

  // The best checkpoint is picked by the task's primary metric unless told
  // otherwise; "eval_accuracy" is accepted as transformers names it.
  // Instruction tasks have the held-out loss and perplexity only.
  t.metrics = task_metrics(task);
  std::vector<std::string> names = {"loss"};
  if (task.instruction)
    names.push_back("perplexity");
  for (data::Metric m : t.metrics)
    names.push_back(data::metric_name(m));
  std::string best =
      task.instruction ? "loss"
      : task.glue.empty()
          ? data::metric_name(t.metrics.front())
          : data::metric_name(data::glue_task(task.glue).primary);
  if (std::find(names.begin(), names.end(), best) == names.end())
    best = names[1];
  if (const auto given = s.text("metric_for_best_model")) {
    best = given->rfind("eval_", 0) == 0 ? given->substr(5) : *given;
    if (std::find(names.begin(), names.end(), best) == names.end()) {
      s.fail("metric_for_best_model",
             "one of the task's metrics (" + join_names(names) + ")",
             "add it to task.metrics to compute it");
    }
  }
  t.metric_for_best_model = best;
  // transformers' default (its loss-named metrics); perplexity is a loss.
  t.greater_is_better = best != "loss" && best != "perplexity";
  s.read("greater_is_better", t.greater_is_better);
}

}  // namespace peftcpp::trainers::detail
