#pragma once
// Training checkpoints: everything a killed run needs to continue as if it
// had never stopped. A checkpoint is a folder output_dir/checkpoint-<step>
// that appears only complete: it is written under a temporary name and
// renamed into place (rename is atomic), so a kill mid-write leaves at most
// a temporary folder that is ignored and cleaned up.
//
//   checkpoint-<step>/
//     trainer_state.json          step, epoch, data position, best metric,
//                                 early-stopping count, run fingerprint
//     trainable.safetensors       the trainable parameters by name
//     optimizer.pt                AdamW's moments and step counts
//     rng_state.safetensors       the default generators (CPU, and CUDA)
//     adapter/                    the PEFT folder (deployable as is)

#include <torch/optim/optimizer.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "trainers/trainable_model.h"

namespace peftcpp::trainers {

/// Where the loop is and what it has seen; saved in every checkpoint.
struct TrainerState {
  int64_t global_step = 0;       ///< optimizer steps done
  int64_t epoch = 0;             ///< the epoch in progress (0-based)
  int64_t batches_in_epoch = 0;  ///< micro-batches of `epoch` consumed
  int64_t examples_seen = 0;
  int64_t padded_tokens_seen = 0;
  int64_t skipped_steps = 0;
  bool has_best = false;
  double best_metric = 0.0;
  int64_t best_step = -1;
  double best_epoch = 0.0;
  std::map<std::string, double> best_metrics;  ///< of the best evaluation
  int64_t evals_without_improvement = 0;
  double train_seconds = 0.0;  ///< time spent training before this point
  double loss_sum = 0.0;       ///< sum of losses over all micro-batches
  int64_t loss_count = 0;
  std::string run_fingerprint;
};

/// Writes checkpoint-<state.global_step> into `output_dir` atomically.
/// Returns its path.
std::filesystem::path save_checkpoint(const std::filesystem::path& output_dir,
                                      TrainableModel& model,
                                      const torch::optim::Optimizer& optimizer,
                                      const TrainerState& state);

/// The complete checkpoint with the highest step in `output_dir`, if any.
std::optional<std::filesystem::path> latest_checkpoint(
    const std::filesystem::path& output_dir);

/// Restores parameters, optimizer and generators from `checkpoint` and
/// returns its state. Throws std::runtime_error when the checkpoint was
/// written by another run configuration (fingerprint differs), when a
/// file is missing or malformed, or when its parameters do not match the
/// model's (names, shapes); the model is unchanged on error.
TrainerState load_checkpoint(const std::filesystem::path& checkpoint,
                             TrainableModel& model,
                             torch::optim::Optimizer& optimizer,
                             const std::string& expected_fingerprint);

/// Deletes the oldest checkpoints beyond `keep` (never `protect_step`'s),
/// and temporary folders left by a killed run.
void prune_checkpoints(const std::filesystem::path& output_dir, int64_t keep,
                       int64_t protect_step);

/// Copies folder `from` to `to` atomically (temporary name, then rename
/// over any existing `to`).
void replace_folder(const std::filesystem::path& from,
                    const std::filesystem::path& to);

/// Runs `write(tmp)` on a fresh temporary folder beside `to`, then renames
/// it over `to`. On an exception the temporary folder is removed and `to`
/// is unchanged.
void write_folder_atomically(
    const std::filesystem::path& to,
    const std::function<void(const std::filesystem::path&)>& write);

}  // namespace peftcpp::trainers
