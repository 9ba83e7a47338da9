#include "trainers/trainer.h"

#include <ATen/autocast_mode.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <stdexcept>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/progress.h"
#include "data/dataset/batching.h"
#include "models/encoder/sequence_classifier.h"
#include "trainers/checkpoint.h"
#include "trainers/metrics.h"
#include "trainers/peft_causal_lm.h"
#include "trainers/training_report.h"

namespace peftcpp::trainers {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// Autocast for the forward pass (transformers' bf16/fp16 training): matmuls
/// in the low precision, reductions and the loss in float32.
class AutocastScope {
 public:
  AutocastScope(c10::DeviceType device, const std::string& precision)
      : device_(device) {
    if (precision == "float32")
      return;
    enabled_ = true;
    at::autocast::increment_nesting();
    at::autocast::set_autocast_dtype(
        device, precision == "bfloat16" ? at::kBFloat16 : at::kHalf);
    at::autocast::set_autocast_enabled(device, true);
  }
  ~AutocastScope() {
    if (!enabled_)
      return;
    at::autocast::set_autocast_enabled(device_, false);
    if (at::autocast::decrement_nesting() == 0)
      at::autocast::clear_cache();
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType device_;
  bool enabled_ = false;
};

models::ProblemType problem_type_of(data::TaskKind kind) {
  return kind == data::TaskKind::kRegression
             ? models::ProblemType::kRegression
             : models::ProblemType::kSingleLabelClassification;
}

// The loss of a batch: the head's (classification, regression) or the
// next-token loss over the target tokens (causal LM).
at::Tensor batch_loss(const at::Tensor& logits, const data::Batch& batch,
                      data::TaskKind kind) {
  if (kind == data::TaskKind::kCausalLM)
    return causal_lm_loss(logits, batch.labels);
  return models::sequence_classification_loss(
      logits.to(at::kFloat), batch.labels, problem_type_of(kind));
}

void check_options(const TrainerOptions& o, const c10::Device& device) {
  const auto bad = [](const std::string& key, const std::string& expected,
                      const std::string& got) {
    throw std::invalid_argument(error_message("trainer." + key, expected, got));
  };
  if (o.output_dir.empty())
    bad("output_dir", "a folder", "none");
  if (o.per_device_train_batch_size < 1)
    bad("per_device_train_batch_size", "at least 1",
        std::to_string(o.per_device_train_batch_size));
  if (o.per_device_eval_batch_size < 1)
    bad("per_device_eval_batch_size", "at least 1",
        std::to_string(o.per_device_eval_batch_size));
  if (o.gradient_accumulation_steps < 1)
    bad("gradient_accumulation_steps", "at least 1",
        std::to_string(o.gradient_accumulation_steps));
  if (o.max_steps <= 0 && o.num_train_epochs < 1)
    bad("num_train_epochs", "at least 1 (or max_steps > 0)",
        std::to_string(o.num_train_epochs));
  // float16 needs dynamic loss scaling, which the loop does not have yet.
  if (o.precision != "float32" && o.precision != "bfloat16") {
    bad("precision",
        "float32 or bfloat16 (float16 training needs loss scaling, not "
        "implemented yet)",
        o.precision);
  }
}

}  // namespace

Trainer::Trainer(TrainableModel& model, const data::TokenizedDataset& train_set,
                 const data::TokenizedDataset* eval_set, TrainerOptions options,
                 std::string run_fingerprint, int64_t pad_id)
    : model_(model),
      train_set_(train_set),
      eval_set_(eval_set),
      options_(std::move(options)),
      run_fingerprint_(std::move(run_fingerprint)),
      pad_id_(pad_id) {
  if (train_set_.size() == 0) {
    throw std::invalid_argument(error_message(
        "Trainer", "a training set with at least one example", "none"));
  }
  if (eval_set_ != nullptr &&
      (eval_set_->size() == 0 || std::isnan(eval_set_->labels[0]))) {
    throw std::invalid_argument(error_message(
        "Trainer", "an eval set with labelled examples",
        eval_set_->size() == 0 ? "an empty one" : "unlabelled examples",
        "GLUE test files have no labels; evaluate on the dev split"));
  }
  if (options_.metric_for_best_model.empty() && !options_.metrics.empty())
    options_.metric_for_best_model = data::metric_name(options_.metrics[0]);
  if (options_.metric_for_best_model.empty())
    options_.metric_for_best_model = "loss";
  if (options_.metric_for_best_model == "loss")
    options_.greater_is_better = false;
}

EvalResult Trainer::evaluate(const data::TokenizedDataset& dataset) {
  const auto t0 = Clock::now();
  const c10::Device device(options_.device);
  model_.set_training(false);
  at::NoGradGuard no_grad;
  // In length order so batches pad little; scores go back to row order.
  data::BatchPlanOptions plan;
  plan.batch_size = options_.per_device_eval_batch_size;
  plan.shuffle = false;
  plan.group_by_length = false;
  std::vector<int64_t> order(dataset.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = static_cast<int64_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return dataset.length(a) < dataset.length(b);
  });
  const int64_t num_labels = dataset.num_labels();
  std::vector<float> scores(dataset.size() * num_labels);
  double loss_sum = 0.0;
  // A causal LM's loss is the mean over every target token of the set.
  const bool causal_lm = dataset.kind == data::TaskKind::kCausalLM;
  int64_t target_tokens = 0;
  const bool labelled =
      !dataset.labels.empty() && !std::isnan(dataset.labels[0]);
  for (size_t begin = 0; begin < order.size();
       begin += static_cast<size_t>(plan.batch_size)) {
    const size_t end =
        std::min(order.size(), begin + static_cast<size_t>(plan.batch_size));
    std::vector<int64_t> rows(order.begin() + begin, order.begin() + end);
    data::Batch batch = data::collate(dataset, rows, pad_id_, device);
    at::Tensor logits;
    {
      AutocastScope autocast(device.type(), options_.precision);
      logits = model_.forward(batch);
    }
    if (causal_lm) {
      const CausalLMLossSum s = causal_lm_loss_sum(logits, batch.labels);
      loss_sum += s.sum.item<double>();
      target_tokens += s.tokens;
      continue;
    }
    logits = logits.to(at::kFloat);
    if (labelled) {
      loss_sum += models::sequence_classification_loss(
                      logits, batch.labels, problem_type_of(dataset.kind))
                      .item<double>() *
                  static_cast<double>(rows.size());
    }
    const at::Tensor cpu = logits.reshape({-1, num_labels}).cpu().contiguous();
    const float* p = cpu.data_ptr<float>();
    for (size_t r = 0; r < rows.size(); ++r) {
      std::copy(p + r * num_labels, p + (r + 1) * num_labels,
                scores.begin() + rows[r] * num_labels);
    }
  }
  EvalResult result;
  result.examples = static_cast<int64_t>(dataset.size());
  if (causal_lm) {
    const double loss =
        loss_sum / static_cast<double>(std::max<int64_t>(target_tokens, 1));
    result.metrics = {{"loss", loss}, {"perplexity", std::exp(loss)}};
  } else if (labelled) {
    result.metrics = compute_metrics(options_.metrics, dataset.kind, scores,
                                     num_labels, dataset.labels);
    result.metrics["loss"] = loss_sum / static_cast<double>(dataset.size());
  }
  result.seconds = seconds_since(t0);
  return result;
}

namespace {

/// Everything train() keeps between steps (one object so the loop reads
/// top to bottom).
struct Run {
  TrainerState state;
  int64_t steps_per_epoch = 0;
  int64_t total_steps = 0;
  int64_t warmup_steps = 0;
  double log_loss_sum = 0.0;  ///< since the last log line
  int64_t log_loss_count = 0;
  int64_t log_examples = 0;
  double log_seconds = 0.0;
};

json eval_record(const EvalResult& eval, int64_t step, double epoch) {
  json j{{"step", step}, {"epoch", epoch}};
  for (const auto& [name, value] : eval.metrics)
    j["eval_" + name] = std::isfinite(value) ? json(value) : json(nullptr);
  j["eval_seconds"] = eval.seconds;
  return j;
}

void refuse_stale_output(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return;
  const bool has_adapter = fs::exists(dir / "adapter");
  const bool has_checkpoint = latest_checkpoint(dir).has_value();
  if (has_adapter || has_checkpoint) {
    throw std::invalid_argument(error_message(
        "train", "a new or empty output_dir",
        dir.string() + ", which holds " +
            (has_checkpoint ? "checkpoints" : "an adapter") +
            " of an earlier run",
        "--resume continues that run; or choose another output_dir"));
  }
}

}  // namespace

TrainResult Trainer::train() {
  const auto wall_start = Clock::now();
  const c10::Device device(options_.device);
  check_options(options_, device);
  const fs::path out = options_.output_dir;

  data::BatchPlanOptions plan_options;
  plan_options.batch_size = options_.per_device_train_batch_size;
  plan_options.shuffle = true;
  plan_options.group_by_length = options_.group_by_length;
  plan_options.seed = options_.seed;

  Run run;
  const int64_t batches_per_epoch =
      (static_cast<int64_t>(train_set_.size()) + plan_options.batch_size - 1) /
      plan_options.batch_size;
  const int64_t accum = options_.gradient_accumulation_steps;
  run.steps_per_epoch = (batches_per_epoch + accum - 1) / accum;
  run.total_steps = options_.max_steps > 0
                        ? options_.max_steps
                        : run.steps_per_epoch * options_.num_train_epochs;
  run.warmup_steps = warmup_steps_for(options_.warmup_steps,
                                      options_.warmup_ratio, run.total_steps);

  auto params = model_.trainable_parameters();
  std::vector<at::Tensor> tensors;
  for (const auto& [name, p] : params)
    tensors.push_back(p);
  auto optimizer = make_adamw(params, options_.adamw);

  run.state.run_fingerprint = run_fingerprint_;
  int64_t resumed_from = -1;
  if (options_.resume) {
    if (const auto ckpt = latest_checkpoint(out)) {
      run.state = load_checkpoint(*ckpt, model_, *optimizer, run_fingerprint_);
      resumed_from = run.state.global_step;
      std::fprintf(stderr, "resuming from %s (step %lld, epoch %lld)\n",
                   ckpt->string().c_str(),
                   static_cast<long long>(run.state.global_step),
                   static_cast<long long>(run.state.epoch));
    } else {
      std::fprintf(stderr, "no checkpoint in %s: starting from the beginning\n",
                   out.string().c_str());
    }
  } else {
    refuse_stale_output(out);
  }
  fs::create_directories(out);
  if (resumed_from < 0) {
    // A fresh run's dropout stream depends on the seed alone, not on how
    // many numbers model and adapter initialisation drew.
    torch::manual_seed(options_.seed);
  }
  MetricsLog log(out / "metrics.jsonl", resumed_from);

  std::optional<ProgressBar> bar;
  if (options_.show_progress) {
    bar.emplace("train", run.total_steps, "step");
    bar->set_initial(run.state.global_step);
  }
  TrainResult result;
  result.metric_for_best_model = options_.metric_for_best_model;
  result.trainable_parameters = 0;
  for (const auto& t : tensors)
    result.trainable_parameters += t.numel();
  // The best evaluation so far lives in the trainer state (so a resumed run
  // knows it); its weights are checkpoint-<best_step>/adapter.
  std::optional<EvalResult> best_eval;
  if (run.state.has_best) {
    EvalResult e;
    e.metrics = run.state.best_metrics;
    best_eval = e;
  }

  const auto save = [&]() {
    save_checkpoint(out, model_, *optimizer, run.state);
    prune_checkpoints(out, options_.save_total_limit, run.state.best_step);
  };
  const double epoch_len = static_cast<double>(batches_per_epoch);
  const auto epoch_float = [&]() {
    return static_cast<double>(run.state.epoch) +
           static_cast<double>(run.state.batches_in_epoch) / epoch_len;
  };
  // Evaluates, logs, tracks the best adapter; true when patience ran out.
  const auto evaluate_now = [&]() -> bool {
    if (eval_set_ == nullptr)
      return false;
    EvalResult eval = evaluate(*eval_set_);
    log.write(eval_record(eval, run.state.global_step, epoch_float()));
    const auto it = eval.metrics.find(options_.metric_for_best_model);
    if (it == eval.metrics.end()) {
      throw std::invalid_argument(
          error_message("trainer.metric_for_best_model",
                        "one of the computed metrics [" + join_names([&] {
                          std::vector<std::string> n;
                          for (const auto& kv : eval.metrics)
                            n.push_back(kv.first);
                          return n;
                        }()) +
                            "]",
                        "\"" + options_.metric_for_best_model + "\""));
    }
    std::string line = "eval @ step " + std::to_string(run.state.global_step);
    for (const auto& [name, value] : eval.metrics) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "  %s %.4f", name.c_str(), value);
      line += buf;
    }
    if (bar)
      bar->print_above(line);
    else
      std::fprintf(stderr, "%s\n", line.c_str());
    const double v = it->second;
    const bool improved =
        std::isfinite(v) &&
        (!run.state.has_best ||
         (options_.greater_is_better ? v > run.state.best_metric
                                     : v < run.state.best_metric));
    if (improved) {
      run.state.has_best = true;
      run.state.best_metric = v;
      run.state.best_step = run.state.global_step;
      run.state.best_epoch = epoch_float();
      run.state.evals_without_improvement = 0;
      run.state.best_metrics = eval.metrics;
      best_eval = eval;
    } else {
      ++run.state.evals_without_improvement;
    }
    return options_.early_stopping_patience > 0 &&
           run.state.evals_without_improvement >=
               options_.early_stopping_patience;
  };

  // A run that had stopped early (killed while writing its outputs) does
  // not train further when resumed.
  bool stop =
      options_.early_stopping_patience > 0 &&
      run.state.evals_without_improvement >= options_.early_stopping_patience;
  result.early_stopped = stop;
  optimizer->zero_grad();
  for (; !stop && run.state.global_step < run.total_steps; ++run.state.epoch) {
    const auto plan =
        data::plan_epoch(train_set_, plan_options, run.state.epoch);
    const int64_t n_batches = static_cast<int64_t>(plan.size());
    bool window_bad = false;
    for (int64_t b = run.state.batches_in_epoch;
         b < n_batches && run.state.global_step < run.total_steps; ++b) {
      const auto t0 = Clock::now();
      model_.set_training(true);
      // Micro-batches of this optimizer step: `accum`, fewer at epoch end.
      const int64_t window_start = b - (b % accum);
      const int64_t window_size = std::min(accum, n_batches - window_start);
      data::Batch batch = data::collate(train_set_, plan[b], pad_id_, device);
      at::Tensor loss;
      {
        AutocastScope autocast(device.type(), options_.precision);
        loss = batch_loss(model_.forward(batch), batch, train_set_.kind);
      }
      const double loss_value = loss.item<double>();
      if (!std::isfinite(loss_value)) {
        if (options_.on_non_finite_loss == NonFiniteLoss::kStop) {
          const auto last = latest_checkpoint(out);
          throw std::runtime_error(error_message(
              "train", "a finite loss",
              std::to_string(loss_value) + " at step " +
                  std::to_string(run.state.global_step + 1) + " (epoch " +
                  std::to_string(run.state.epoch) + ", batch " +
                  std::to_string(b) + ")",
              "no adapter was written for this run. In a new output_dir "
              "(a resumed run would repeat the same steps): lower "
              "learning_rate, use precision float32, or set "
              "on_non_finite_loss: skip" +
                  std::string(last ? "; the checkpoints up to " +
                                         last->filename().string() +
                                         " are intact"
                                   : "")));
        }
        window_bad = true;
      } else {
        (loss / static_cast<double>(window_size)).backward();
        run.state.loss_sum += loss_value;
        ++run.state.loss_count;
        run.log_loss_sum += loss_value;
        ++run.log_loss_count;
      }
      const int64_t rows = static_cast<int64_t>(plan[b].size());
      run.state.examples_seen += rows;
      run.state.padded_tokens_seen += batch.input_ids.numel();
      run.log_examples += rows;
      run.state.batches_in_epoch = b + 1;
      if (b + 1 - window_start < window_size) {
        const double dt = seconds_since(t0);
        run.state.train_seconds += dt;
        run.log_seconds += dt;
        continue;  // accumulate more micro-batches
      }

      // The optimizer step.
      double grad_norm = 0.0;
      if (!window_bad && options_.max_grad_norm > 0)
        grad_norm =
            torch::nn::utils::clip_grad_norm_(tensors, options_.max_grad_norm);
      if (!window_bad && !std::isfinite(grad_norm)) {
        if (options_.on_non_finite_loss == NonFiniteLoss::kStop) {
          throw std::runtime_error(error_message(
              "train", "finite gradients",
              "a gradient norm of " + std::to_string(grad_norm) + " at step " +
                  std::to_string(run.state.global_step + 1),
              "no adapter was written for this run. In a new output_dir: "
              "lower learning_rate or set on_non_finite_loss: skip"));
        }
        window_bad = true;
      }
      const double lr =
          options_.adamw.learning_rate *
          lr_factor(options_.lr_scheduler_type, run.state.global_step,
                    run.warmup_steps, run.total_steps);
      if (window_bad) {
        ++run.state.skipped_steps;  // the update is dropped, the schedule
                                    // moves on
      } else {
        set_learning_rate(*optimizer, lr);
        optimizer->step();
      }
      optimizer->zero_grad();
      window_bad = false;
      ++run.state.global_step;
      const double dt = seconds_since(t0);
      run.state.train_seconds += dt;
      run.log_seconds += dt;
      if (bar)
        bar->advance();

      const bool epoch_end = b + 1 == n_batches;
      if (options_.logging_steps > 0 &&
          (run.state.global_step % options_.logging_steps == 0 ||
           run.state.global_step == run.total_steps)) {
        const double mean = run.log_loss_count > 0
                                ? run.log_loss_sum / run.log_loss_count
                                : std::nan("");
        const double rate =
            run.log_seconds > 0 ? run.log_examples / run.log_seconds : 0.0;
        log.write(
            json{{"step", run.state.global_step},
                 {"epoch", epoch_float()},
                 {"loss", std::isfinite(mean) ? json(mean) : json(nullptr)},
                 {"learning_rate", lr},
                 {"grad_norm", grad_norm},
                 {"examples_per_second", rate}});
        char buf[128];
        std::snprintf(buf, sizeof buf, "loss %.4f  lr %.2e  %.1f ex/s", mean,
                      lr, rate);
        if (bar)
          bar->set_postfix(buf);
        run.log_loss_sum = 0.0;
        run.log_loss_count = 0;
        run.log_examples = 0;
        run.log_seconds = 0.0;
      }
      const bool done = run.state.global_step >= run.total_steps;
      const bool eval_due = epoch_end || done ||
                            (options_.eval_steps > 0 &&
                             run.state.global_step % options_.eval_steps == 0);
      const bool save_due =
          eval_due || (options_.save_steps > 0 &&
                       run.state.global_step % options_.save_steps == 0);
      if (eval_due && evaluate_now())
        stop = true;
      if (save_due) {
        if (epoch_end) {
          // The checkpoint points at the start of the next epoch.
          ++run.state.epoch;
          run.state.batches_in_epoch = 0;
          save();
          --run.state.epoch;
          run.state.batches_in_epoch = n_batches;
        } else {
          save();
        }
      }
      if (stop) {
        result.early_stopped = true;
        break;
      }
    }
    run.state.batches_in_epoch = 0;
  }
  if (bar)
    bar->finish();

  // The deployable adapter: the best evaluated weights, else the last.
  const fs::path adapter = out / "adapter";
  if (options_.load_best_model_at_end && run.state.has_best) {
    const fs::path best =
        out / ("checkpoint-" + std::to_string(run.state.best_step)) / "adapter";
    if (!fs::exists(best / "adapter_config.json")) {
      throw std::runtime_error(error_message(
          "train", "the best checkpoint's adapter " + best.string(), "none",
          "it was deleted; its metrics are in metrics.jsonl. Set "
          "load_best_model_at_end: false to keep the last weights"));
    }
    replace_folder(best, adapter);
  } else {
    write_folder_atomically(
        adapter, [&](const fs::path& tmp) { model_.save_adapter(tmp); });
  }

  result.global_step = run.state.global_step;
  result.epochs_done = static_cast<double>(run.state.global_step) /
                       static_cast<double>(run.steps_per_epoch);
  result.skipped_steps = run.state.skipped_steps;
  result.best_eval = best_eval;
  result.best_step = run.state.best_step;
  result.best_epoch = run.state.best_epoch;
  result.train_seconds = run.state.train_seconds;
  result.total_seconds = seconds_since(wall_start);
  result.train_examples = run.state.examples_seen;
  result.train_padded_tokens = run.state.padded_tokens_seen;
  result.train_examples_per_second =
      run.state.train_seconds > 0
          ? run.state.examples_seen / run.state.train_seconds
          : 0.0;
  result.final_train_loss =
      run.state.loss_count > 0
          ? run.state.loss_sum / static_cast<double>(run.state.loss_count)
          : std::nan("");
  result.peak_rss_bytes = peak_rss_bytes();
  result.adapter_dir = adapter;
  write_file_atomically(out / "summary.json", [&](std::ostream& o) {
    o << summary_to_json(result).dump(2) << "\n";
  });
  std::string why;
  if (!plot_training_curves(out / "metrics.jsonl",
                            options_.metric_for_best_model,
                            out / "training_curves.png", &why)) {
    std::fprintf(stderr, "no plot: %s\n", why.c_str());
  }
  return result;
}

}  // namespace peftcpp::trainers
