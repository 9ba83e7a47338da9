// The run config's schema (its keys), the metrics a task reports, and the
// fingerprint that ties checkpoints to the configuration that wrote them.

#include <nlohmann/json.hpp>

#include <cstdio>
#include <stdexcept>
#include <system_error>

#include "common/error.h"
#include "data/dataset/glue.h"
#include "peft/adapterhub_folder.h"
#include "trainers/lr_schedule.h"
#include "trainers/run_config.h"

namespace peftcpp::trainers {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// FNV-1a, 64 bits: small, stable across platforms and releases (std::hash
// is neither).
uint64_t fnv1a(const std::string& bytes) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// The same folder however it was written ("./a/../a", a symlink).
std::string canonical_path(const fs::path& p) {
  if (p.empty())
    return "";
  std::error_code ec;
  const fs::path c = fs::weakly_canonical(p, ec);
  return (ec ? fs::absolute(p).lexically_normal() : c).string();
}

// By name, so reordering the enum keeps fingerprints.
const char* format_name(data::TableFormat format) {
  switch (format) {
    case data::TableFormat::kTsv:
      return "tsv";
    case data::TableFormat::kCsv:
      return "csv";
    case data::TableFormat::kJsonl:
      return "jsonl";
    case data::TableFormat::kAuto:
      break;
  }
  return "auto";
}

json method_json(const peft::AdapterConfig& method) {
  if (const auto* bn = std::get_if<peft::BottleneckConfig>(&method.method)) {
    // Bottleneck adapters have AdapterHub's format, not PEFT's.
    json j = json::parse(peft::bottleneck_config_to_json(*bn));
    j["peft_type"] = peft::to_string(method.peft_type());
    j["task_type"] = method.task_type;
    j["modules_to_save"] =
        method.modules_to_save ? json(*method.modules_to_save) : json(nullptr);
    return j;
  }
  return json::parse(peft::adapter_config_to_json(method));
}

}  // namespace

const std::vector<std::string>& run_config_keys(const std::string& section) {
  static const std::vector<std::string> kTop = {"model", "task", "method",
                                                "trainer", "output_dir"};
  static const std::vector<std::string> kModel = {"path", "dtype", "threads"};
  static const std::vector<std::string> kTask = {"glue",
                                                 "data_dir",
                                                 "train_file",
                                                 "eval_file",
                                                 "format",
                                                 "text_column",
                                                 "text_pair_column",
                                                 "label_column",
                                                 "has_header",
                                                 "task_type",
                                                 "labels",
                                                 "max_length",
                                                 "max_train_examples",
                                                 "max_eval_examples",
                                                 "metrics",
                                                 "cache_dir",
                                                 "packing",
                                                 "prompt_template",
                                                 "label_completions",
                                                 "use_chat_template"};
  static const std::vector<std::string> kTrainer = {
      "num_train_epochs",
      "max_steps",
      "per_device_train_batch_size",
      "batch_size",
      "per_device_eval_batch_size",
      "gradient_accumulation_steps",
      "learning_rate",
      "weight_decay",
      "adam_beta1",
      "adam_beta2",
      "adam_epsilon",
      "lr_scheduler_type",
      "warmup_steps",
      "warmup_ratio",
      "max_grad_norm",
      "precision",
      "device",
      "eval_steps",
      "logging_steps",
      "save_steps",
      "metric_for_best_model",
      "greater_is_better",
      "early_stopping_patience",
      "load_best_model_at_end",
      "save_total_limit",
      "seed",
      "group_by_length",
      "on_non_finite_loss"};
  if (section.empty())
    return kTop;
  if (section == "model")
    return kModel;
  if (section == "task")
    return kTask;
  if (section == "trainer")
    return kTrainer;
  throw std::out_of_range(error_message(
      "run_config_keys", "\"\", \"model\", \"task\" or \"trainer\"",
      "\"" + section + "\"",
      "the method's keys are peft::adapter_config_keys(type)"));
}

std::vector<data::Metric> task_metrics(const TaskSection& task) {
  if (task.instruction)
    return {};
  std::vector<data::Metric> out;
  for (const auto& name : task.metrics)
    out.push_back(data::parse_metric(name));
  if (!out.empty())
    return out;
  if (!task.glue.empty())
    return data::glue_task(task.glue).metrics;
  if (task.labels.kind == data::TaskKind::kRegression)
    return {data::Metric::kPearson, data::Metric::kSpearman};
  return {data::Metric::kAccuracy};
}

std::string run_fingerprint(const RunConfig& config) {
  const TaskSection& task = config.task;
  const TrainerOptions& t = config.trainer;
  json j;
  j["model"] = {{"path", canonical_path(config.model.path)},
                {"dtype", config.model.dtype}};
  j["data"] = {
      {"glue", task.glue},
      {"data_dir", canonical_path(task.data_dir)},
      {"train_file", canonical_path(task.train_file)},
      {"eval_file", canonical_path(task.eval_file)},
      {"format", format_name(task.format)},
      {"text_column", task.columns.text},
      {"text_pair_column", task.columns.text_pair.value_or("")},
      {"label_column", task.columns.label},
      {"has_header", task.columns.has_header},
      {"regression", task.labels.kind == data::TaskKind::kRegression},
      {"labels", task.labels.label_names},
      {"max_length", task.max_length},
      {"max_train_examples", task.max_train_examples},
      {"max_eval_examples", task.max_eval_examples},
  };
  if (task.instruction) {
    // Only instruction runs carry these, so other fingerprints stay as
    // they were.
    const data::InstructionTemplate& f = task.instruction_template;
    j["data"]["instruction"] = {{"packing", task.packing},
                                {"prompt_template", f.prompt},
                                {"label_completions", f.completions},
                                {"use_chat_template", f.as_chat}};
  }
  j["method"] = method_json(config.method);
  // What the optimizer sees and in what order. Left out: logging, progress,
  // resume, early stopping, evaluation cadence and batch size, the
  // checkpoint limit, the device (a run may move between machines) and
  // output_dir (a run may be moved).
  j["trainer"] = {
      {"num_train_epochs", t.num_train_epochs},
      {"max_steps", t.max_steps},
      {"per_device_train_batch_size", t.per_device_train_batch_size},
      {"gradient_accumulation_steps", t.gradient_accumulation_steps},
      {"learning_rate", t.adamw.learning_rate},
      {"weight_decay", t.adamw.weight_decay},
      {"adam_beta1", t.adamw.adam_beta1},
      {"adam_beta2", t.adamw.adam_beta2},
      {"adam_epsilon", t.adamw.adam_epsilon},
      {"lr_scheduler_type", lr_schedule_name(t.lr_scheduler_type)},
      {"warmup_steps", t.warmup_steps},
      {"warmup_ratio", t.warmup_ratio},
      {"max_grad_norm", t.max_grad_norm},
      {"precision", t.precision},
      {"metric_for_best_model", t.metric_for_best_model},
      {"greater_is_better", t.greater_is_better},
      {"seed", t.seed},
      {"group_by_length", t.group_by_length},
      {"on_non_finite_loss", t.on_non_finite_loss == NonFiniteLoss::kSkip},
  };
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(fnv1a(j.dump())));
  return hex;
}

}  // namespace peftcpp::trainers
