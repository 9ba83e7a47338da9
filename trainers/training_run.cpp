#include "trainers/training_run.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "data/dataset/glue.h"
#include "models/encoder/load_encoder.h"
#include "peft/head_labels.h"
#include "peft/peft_model.h"
#include "trainers/peft_classifier.h"
#include "trainers/training_report.h"

namespace peftcpp::trainers {

namespace fs = std::filesystem;

namespace {

/// The train and eval examples of a task, and how they are scored.
struct TaskData {
  data::LabeledDataset train;
  std::optional<data::LabeledDataset> eval;
  std::vector<data::Metric> metrics;
};

fs::path glue_task_dir(const data::GlueTask& task, const fs::path& data_dir) {
  // data_dir may be the task's own folder or the GLUE root holding it.
  if (fs::exists(data_dir / task.folder))
    return data_dir / task.folder;
  return data_dir;
}

std::vector<data::Metric> metrics_for(const TaskSection& task,
                                      data::TaskKind kind,
                                      std::vector<data::Metric> fallback) {
  if (!task.metrics.empty()) {
    std::vector<data::Metric> m;
    for (const auto& name : task.metrics)
      m.push_back(data::parse_metric(name));
    return m;
  }
  if (!fallback.empty())
    return fallback;
  if (kind == data::TaskKind::kRegression)
    return {data::Metric::kPearson, data::Metric::kSpearman};
  return {data::Metric::kAccuracy};
}

TaskData read_task(const TaskSection& task, bool need_train) {
  TaskData d;
  if (!task.glue.empty()) {
    const data::GlueTask& g = data::glue_task(task.glue);
    const fs::path dir = glue_task_dir(g, task.data_dir);
    if (need_train)
      d.train = data::load_glue_split(g, dir, "train");
    d.eval = data::load_glue_split(g, dir, g.dev_split);
    d.metrics = metrics_for(task, g.kind, g.metrics);
  } else {
    if (need_train || task.eval_file.empty()) {
      d.train = data::load_table(task.train_file, task.format, task.columns,
                                 task.labels);
    }
    if (!task.eval_file.empty()) {
      // The eval labels must be the training labels, in the same order.
      data::LabelSpec labels = task.labels;
      if (labels.label_names.empty())
        labels.label_names = d.train.label_names;
      d.eval =
          data::load_table(task.eval_file, task.format, task.columns, labels);
    }
    d.metrics = metrics_for(task, task.labels.kind, {});
  }
  data::keep_first(d.train, task.max_train_examples);
  if (d.eval)
    data::keep_first(*d.eval, task.max_eval_examples);
  return d;
}

fs::path dataset_cache_dir(const TaskSection& task) {
  if (!task.cache_dir.empty())
    return task.cache_dir;
  if (const char* c = std::getenv("PEFTCPP_CACHE"))
    return fs::path(c) / "datasets";
  const char* home = std::getenv("HOME");
  return fs::path(home ? home : ".") / ".cache" / "peftcpp" / "datasets";
}

data::TokenizedDataset tokenize(const data::LabeledDataset& d,
                                const data::Tokenizer& tokenizer,
                                const std::string& fingerprint,
                                const TaskSection& task, const char* what) {
  data::TokenizeDatasetOptions options;
  options.max_length = static_cast<size_t>(task.max_length);
  options.show_progress = d.size() > 20000;
  data::CacheOutcome outcome;
  std::string detail;
  data::TokenizedDataset t =
      data::tokenize_cached(d, tokenizer, fingerprint, options,
                            dataset_cache_dir(task), &outcome, &detail);
  const char* how = outcome == data::CacheOutcome::kHit ? "from cache"
                    : outcome == data::CacheOutcome::kCreated
                        ? "tokenized, cached"
                        : "cache rebuilt";
  std::fprintf(stderr, "%s: %zu examples (%s%s%s)\n", what, t.size(), how,
               detail.empty() ? "" : ": ", detail.c_str());
  return t;
}

int64_t pad_id_of(const data::Tokenizer& tokenizer) {
  return tokenizer.pad_token() ? tokenizer.pad_token()->id : 0;
}

models::LoadEncoderOptions classifier_options(const ModelSection& model,
                                              const data::LabeledDataset& d) {
  models::LoadEncoderOptions o;
  o.head = models::EncoderHead::kSequenceClassification;
  o.dtype = models::parse_dtype(model.dtype);
  if (d.kind == data::TaskKind::kRegression) {
    o.id2label = {"LABEL_0"};
    o.problem_type = models::ProblemType::kRegression;
  } else {
    o.id2label = d.label_names;
    o.problem_type = models::ProblemType::kSingleLabelClassification;
  }
  return o;
}

}  // namespace

TrainResult run_training(const RunConfig& config) {
  if (config.model.threads > 0)
    at::set_num_threads(config.model.threads);
  const TaskData task = read_task(config.task, /*need_train=*/true);
  const auto tokenizer = data::Tokenizer::from_pretrained(config.model.path);
  const std::string tok_fp = data::tokenizer_fingerprint(config.model.path);
  const data::TokenizedDataset train =
      tokenize(task.train, tokenizer, tok_fp, config.task, "train");
  std::optional<data::TokenizedDataset> eval;
  if (task.eval)
    eval = tokenize(*task.eval, tokenizer, tok_fp, config.task, "eval");

  // The seed fixes the new head's and the adapter's initial weights.
  torch::manual_seed(config.trainer.seed);
  models::LoadedEncoder base = models::load_encoder(
      config.model.path, classifier_options(config.model, task.train));
  peft::AdapterConfig method = config.method;
  if (method.base_model_name_or_path.empty())
    method.base_model_name_or_path = config.model.path.string();
  peft::PeftModel peft_model(std::move(base));
  peft_model->add_adapter("default", method);
  peft_model->to(c10::Device(config.trainer.device));
  std::fprintf(stderr, "%s\n",
               peft_model->trainable_parameters_report().c_str());

  TrainerOptions options = config.trainer;
  options.metrics = task.metrics;
  // The configuration beside the run, written once: a resumed or refused
  // run keeps the file of the run that is there.
  fs::create_directories(options.output_dir);
  if (!fs::exists(options.output_dir / "run_config.yaml")) {
    write_file_atomically(options.output_dir / "run_config.yaml",
                          [&](std::ostream& o) { o << config.source_text; });
  }

  PeftClassifier model(peft_model);
  Trainer trainer(model, train, eval ? &*eval : nullptr, options,
                  run_fingerprint(config), pad_id_of(tokenizer));
  TrainResult result = trainer.train();
  std::printf("%s", format_summary_table(result).c_str());
  std::fflush(stdout);
  return result;
}

EvalResult run_evaluation(const ModelSection& model,
                          const fs::path& adapter_dir, const TaskSection& task,
                          int64_t batch_size) {
  if (model.threads > 0)
    at::set_num_threads(model.threads);
  // The adapter's own labels (peftcpp writes them beside it) fix the head
  // and the label order of the eval file.
  std::optional<peft::AdapterHead> head;
  if (!adapter_dir.empty())
    head = peft::read_adapter_head(adapter_dir);
  TaskSection with_labels = task;
  if (head && task.glue.empty() && task.labels.label_names.empty() &&
      head->problem_type != models::ProblemType::kRegression)
    with_labels.labels.label_names = head->id2label;
  const TaskData d = read_task(with_labels, /*need_train=*/false);
  if (!d.eval) {
    throw std::invalid_argument(error_message(
        "eval", "an eval split (a GLUE task or task.eval_file)", "none"));
  }
  const auto tokenizer = data::Tokenizer::from_pretrained(model.path);
  const data::TokenizedDataset eval =
      tokenize(*d.eval, tokenizer, data::tokenizer_fingerprint(model.path),
               task, "eval");
  models::LoadEncoderOptions load = classifier_options(model, *d.eval);
  if (head)
    peft::apply_adapter_head(*head, load);
  models::LoadedEncoder base = models::load_encoder(model.path, load);
  peft::PeftModel peft_model(std::move(base));
  if (!adapter_dir.empty())
    peft_model->load_adapter(adapter_dir, "default");
  PeftClassifier classifier(peft_model);
  TrainerOptions options;
  options.output_dir = ".";
  options.per_device_eval_batch_size = batch_size;
  options.metrics = d.metrics;
  options.show_progress = false;
  Trainer trainer(classifier, eval, &eval, options, "", pad_id_of(tokenizer));
  return trainer.evaluate(eval);
}

}  // namespace peftcpp::trainers
