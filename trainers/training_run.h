#pragma once
// A whole run from a RunConfig: load the model and tokenizer, read and
// tokenize the data (cached), attach the method, train, evaluate, write the
// adapter and the report. What `peftcpp train` and `peftcpp eval` call.

#include <filesystem>
#include <optional>
#include <string>

#include "trainers/run_config.h"
#include "trainers/trainer.h"

namespace peftcpp::trainers {

/// Trains as `config` says; output_dir gets adapter/, checkpoints,
/// metrics.jsonl, summary.json, training_curves.png and run_config.yaml.
TrainResult run_training(const RunConfig& config);

/// Evaluates a model (with `adapter_dir` when non-empty) on the eval split
/// of `task` (GLUE dev, or task.eval_file). Prints nothing.
EvalResult run_evaluation(const ModelSection& model,
                          const std::filesystem::path& adapter_dir,
                          const TaskSection& task, int64_t batch_size);

}  // namespace peftcpp::trainers
