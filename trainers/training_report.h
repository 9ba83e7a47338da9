#pragma once
// What a person reads about a run: the JSONL metrics log (one object per
// logging step and per evaluation), the summary table printed at the end,
// and a PNG plot of training loss and eval metric drawn by gnuplot.

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "trainers/trainer.h"

namespace peftcpp::trainers {

/// output_dir/metrics.jsonl. On resume, records after the checkpoint's step
/// (written by the killed run after its last checkpoint) are dropped so the
/// log reads like one uninterrupted run.
class MetricsLog {
 public:
  /// Starts a new log (`resume_step` < 0) or continues one.
  MetricsLog(const std::filesystem::path& path, int64_t resume_step);
  /// Appends one record and flushes it.
  void write(const nlohmann::json& record);
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::ofstream out_;
};

/// The end-of-run table: best metric, epoch and step, time, examples/s,
/// trainable parameters, peak memory, where the adapter is.
std::string format_summary_table(const TrainResult& result);

/// Draws training loss (left axis) and `metric` from eval records (right
/// axis) against the optimizer step into `png`, with gnuplot. Returns false
/// and sets `why` when there is no gnuplot or nothing to plot; throws
/// nothing (a plot never fails a run).
bool plot_training_curves(const std::filesystem::path& metrics_jsonl,
                          const std::string& metric,
                          const std::filesystem::path& png, std::string* why);

/// The TrainResult as JSON (output_dir/summary.json).
nlohmann::json summary_to_json(const TrainResult& result);

/// Peak resident set size of this process in bytes (Linux VmHWM).
int64_t peak_rss_bytes();

}  // namespace peftcpp::trainers
