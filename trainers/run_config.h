#pragma once
// One training run as a user writes it (a YAML file, `peftcpp train
// --config`): the model, the task and its data, the PEFT method and the
// trainer settings. Parsing lives in run_config_yaml.cpp and
// run_config_sections.cpp, the key lists and the fingerprint in
// run_fingerprint.cpp; running it in training_run.cpp.
//
//   model:   {path: DIR, dtype: float32}
//   task:    {glue: sst2, data_dir: ../shared/data/glue, max_length: 128}
//   method:  {peft_type: LORA, r: 8, lora_alpha: 16,
//             target_modules: [query, value]}
//   trainer: {num_train_epochs: 3, learning_rate: 5e-4, ...}
//   output_dir: runs/sst2-lora
//
// Instruction tuning of a causal LM (model.path a decoder folder or .gguf):
//
//   task:    {task_type: instruction, train_file: train.jsonl,
//             eval_file: dev.jsonl, max_length: 256, packing: false}
//   task:    {task_type: instruction, glue: sst2, data_dir: ...,
//             prompt_template: "Review: {text}\nSentiment:",
//             label_completions: [" negative", " positive"]}
//   method:  {peft_type: LORA, task_type: CAUSAL_LM, ...}
//
// Every key and its default: examples/configs/README.md.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset/glue.h"
#include "data/dataset/instruction_dataset.h"
#include "data/dataset/table_file.h"
#include "peft/adapter_config.h"
#include "trainers/trainer.h"

namespace peftcpp::trainers {

/// The base model.
struct ModelSection {
  /// A Hugging Face folder (encoder or decoder), or a .gguf file (decoder).
  std::filesystem::path path;
  std::string dtype = "float32";
  int threads = 0;  ///< intra-op threads; 0 = LibTorch's default
};

/// The task and where its examples are: a GLUE task (glue + data_dir, the
/// task's folder or the GLUE root holding it) or the user's own files.
struct TaskSection {
  std::string glue;  ///< "" = own files
  std::filesystem::path data_dir;
  std::filesystem::path train_file;  ///< own files
  std::filesystem::path eval_file;   ///< own files; optional
  data::TableFormat format = data::TableFormat::kAuto;
  data::ColumnMapping columns;
  data::LabelSpec labels;
  int64_t max_length = 128;
  int64_t max_train_examples = -1;  ///< first N (a documented subset)
  int64_t max_eval_examples = -1;
  /// Metric names; empty = the GLUE task's, or accuracy / pearson+spearman.
  std::vector<std::string> metrics;
  /// Where tokenized datasets are cached (HDF5); empty = <cache>/datasets.
  std::filesystem::path cache_dir;

  /// task_type "instruction": a causal LM learns completions
  /// (data/dataset/instruction_dataset.h). The files are instruction JSONL,
  /// or with prompt_template a labelled table / GLUE task phrased by
  /// `instruction_template`. Evaluated by held-out loss and perplexity.
  bool instruction = false;
  /// prompt_template, label_completions, use_chat_template; empty prompt =
  /// the files are instruction JSONL.
  data::InstructionTemplate instruction_template;
  /// Concatenate examples into rows of max_length tokens.
  bool packing = false;
};

/// Everything one run needs.
struct RunConfig {
  ModelSection model;
  TaskSection task;
  peft::AdapterConfig method;
  TrainerOptions trainer;
  /// The YAML as given (after overrides), saved beside the run.
  std::string source_text;
};

/// Parses a run configuration (YAML) and applies `overrides` ("a.b=value",
/// in order, before anything is read; the value is a YAML scalar, a flow
/// list "[query,value]" or mapping, or "" for null). Unknown keys, at any
/// level and in `method`, are errors that name the key, its section, the
/// keys there are and the closest one; so is an override of a key that
/// does not exist. Bad values are errors naming the key. Throws
/// std::invalid_argument (bad value or key) / std::runtime_error (YAML
/// syntax, with line and column). Relative paths in the text resolve
/// against `base_dir`, those from overrides against the current folder.
/// `where` names the source in messages ("run config FILE").
///
/// Defaults filled in: method.task_type SEQ_CLS (CAUSAL_LM for task_type
/// instruction); trainer.metrics from task_metrics(); metric_for_best_model
/// = the GLUE task's primary metric, else the first metric ("loss" for
/// instruction tasks); greater_is_better false for "loss" and
/// "perplexity", else true. output_dir may stay empty (`peftcpp eval`);
/// run_training needs it.
RunConfig parse_run_config(const std::string& yaml_text,
                           const std::vector<std::string>& overrides,
                           const std::filesystem::path& base_dir,
                           const std::string& where);

/// Reads and parses a YAML file (see parse_run_config); relative paths
/// resolve against the file's folder.
RunConfig load_run_config(const std::filesystem::path& path,
                          const std::vector<std::string>& overrides);

/// A stable hash (16 hex digits, FNV-1a) of what shapes the training
/// trajectory: the model (canonical path, dtype), the data (task, files,
/// columns, labels, max_length, subsets), the method's config, the
/// optimizer, schedule, batching, precision, seed and best-checkpoint
/// metric. Not logging, progress, resume, early stopping, evaluation
/// cadence, the checkpoint limit, the device or output_dir: checkpoints of
/// another configuration are refused, a moved or re-logged run is not.
std::string run_fingerprint(const RunConfig& config);

/// The keys of a section of the run config: "" (the top level), "model",
/// "task", "trainer". std::out_of_range for others (the method's keys are
/// peft::adapter_config_keys(type)).
const std::vector<std::string>& run_config_keys(const std::string& section);

/// The metrics a task reports: task.metrics when given, else the GLUE
/// task's, else accuracy (classification) or pearson and spearmanr
/// (regression); none for instruction tasks (loss and perplexity only).
std::vector<data::Metric> task_metrics(const TaskSection& task);

}  // namespace peftcpp::trainers
