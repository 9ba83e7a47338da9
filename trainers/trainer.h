#pragma once
// The one training loop: AdamW on the trainable parameters, a schedule with
// warmup, gradient accumulation and clipping, autocast, evaluation every N
// steps and at each epoch's end, best-checkpoint tracking, early stopping,
// atomic checkpoints that a killed run resumes from bit for bit (CPU), a
// progress bar, a JSONL log, and a refusal to go on after a NaN/inf loss.
//
//   trainers::Trainer trainer(model, train_set, &dev_set, options);
//   trainers::TrainResult result = trainer.train();

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset/glue.h"
#include "data/dataset/tokenized_dataset.h"
#include "trainers/lr_schedule.h"
#include "trainers/optimizer.h"
#include "trainers/trainable_model.h"

namespace peftcpp::trainers {

/// What to do with a non-finite loss.
enum class NonFiniteLoss {
  kStop,  ///< throw, keep the last good checkpoint (default)
  kSkip,  ///< drop the step (gradients zeroed), count it, go on
};

/// The loop's settings; names follow transformers' TrainingArguments.
struct TrainerOptions {
  std::filesystem::path output_dir;
  int64_t num_train_epochs = 3;
  int64_t max_steps = -1;  ///< optimizer steps; > 0 overrides the epochs
  int64_t per_device_train_batch_size = 32;
  int64_t per_device_eval_batch_size = 64;
  int64_t gradient_accumulation_steps = 1;
  AdamWSettings adamw;
  LrSchedule lr_scheduler_type = LrSchedule::kLinear;
  int64_t warmup_steps = 0;
  double warmup_ratio = 0.0;
  double max_grad_norm = 1.0;  ///< <= 0: no clipping
  /// "float32" or "bfloat16" (autocast; CPU or CUDA). "float16" is refused
  /// until the loop has dynamic loss scaling.
  std::string precision = "float32";
  std::string device = "cpu";
  int64_t eval_steps = 0;      ///< also evaluate every N optimizer steps
  int64_t logging_steps = 10;  ///< a log line every N optimizer steps
  /// Also write a checkpoint every N optimizer steps (checkpoints are
  /// always written at each evaluation and epoch end).
  int64_t save_steps = 0;
  /// Metric that picks the best checkpoint ("accuracy", ...; "loss").
  std::string metric_for_best_model;
  bool greater_is_better = true;
  /// Stop after this many evaluations without improvement (0: never).
  int64_t early_stopping_patience = 0;
  /// At the end, the adapter folder holds the best evaluated weights
  /// (else the last).
  bool load_best_model_at_end = true;
  /// Checkpoints kept (oldest removed; the best is never removed).
  int64_t save_total_limit = 2;
  uint64_t seed = 42;
  bool group_by_length = false;
  NonFiniteLoss on_non_finite_loss = NonFiniteLoss::kStop;
  /// Continue from the newest complete checkpoint in output_dir.
  bool resume = false;
  /// Metrics computed at evaluation.
  std::vector<data::Metric> metrics;
  /// Progress bar on stderr.
  bool show_progress = true;
};

/// One evaluation.
struct EvalResult {
  std::map<std::string, double> metrics;  ///< by metric_name, plus "loss"
  int64_t examples = 0;
  double seconds = 0.0;
};

/// What a finished run reports (also written to output_dir/summary.json).
struct TrainResult {
  int64_t global_step = 0;
  double epochs_done = 0.0;
  bool early_stopped = false;
  int64_t skipped_steps = 0;  ///< non-finite losses skipped
  std::optional<EvalResult> best_eval;
  int64_t best_step = -1;
  double best_epoch = 0.0;
  double train_seconds = 0.0;  ///< forward/backward/step only
  double total_seconds = 0.0;  ///< wall time incl. evaluation and saving
  double train_examples_per_second = 0.0;
  int64_t train_examples = 0;  ///< examples trained on (all epochs)
  /// Batch rows x padded length, summed: the work actually computed (to
  /// compare stacks whose batches pad differently).
  int64_t train_padded_tokens = 0;
  double final_train_loss = 0.0;
  int64_t trainable_parameters = 0;
  int64_t peak_rss_bytes = 0;
  std::filesystem::path adapter_dir;  ///< output_dir/adapter
  std::string metric_for_best_model;
};

/// Trains `model` on `train_set`, evaluating on `eval_set` when given.
class Trainer {
 public:
  /// `run_fingerprint` identifies the run configuration (model, data,
  /// method, options that shape the trajectory); a checkpoint written under
  /// another fingerprint is refused on resume.
  Trainer(TrainableModel& model, const data::TokenizedDataset& train_set,
          const data::TokenizedDataset* eval_set, TrainerOptions options,
          std::string run_fingerprint, int64_t pad_id);

  /// Runs to the end (or early stop) and writes output_dir/adapter,
  /// metrics.jsonl, summary.json and training_curves.png.
  TrainResult train();

  /// Loss and metrics of the model on `dataset` (no gradients).
  EvalResult evaluate(const data::TokenizedDataset& dataset);

 private:
  TrainableModel& model_;
  const data::TokenizedDataset& train_set_;
  const data::TokenizedDataset* eval_set_;
  TrainerOptions options_;
  std::string run_fingerprint_;
  int64_t pad_id_;
};

}  // namespace peftcpp::trainers
