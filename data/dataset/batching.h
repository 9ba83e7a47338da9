#pragma once
// Which rows go into which batch, per epoch: in order, shuffled by seed, or
// grouped by length (transformers' LengthGroupedSampler: shuffle, cut into
// mega-batches of 50 batches, sort each by length, longest batch first) so
// dynamic padding wastes little. Deterministic in (seed, epoch) on every
// platform: our own generator use, not std::shuffle's unspecified one.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "data/dataset/tokenized_dataset.h"

namespace peftcpp::data {

/// How to batch.
struct BatchPlanOptions {
  /// Rows per batch (> 0); the last batch may be shorter.
  int64_t batch_size = 32;
  /// A new random order every epoch (training); false keeps file order.
  bool shuffle = true;
  /// Put rows of similar length together (less padding). Without shuffle
  /// the mega-batches are cut from the file order.
  bool group_by_length = false;
  /// Seed of the order; with the epoch it fixes the plan.
  uint64_t seed = 42;
  /// Leave out a last batch shorter than batch_size.
  bool drop_last = false;
};

/// The batches of one epoch as row indices. Same (dataset, options, epoch)
/// -> same plan; a resumed run skips the batches it already did. Every row
/// appears exactly once (except those of a dropped last batch). Throws
/// std::invalid_argument for batch_size <= 0.
std::vector<std::vector<int64_t>> plan_epoch(const TokenizedDataset& dataset,
                                             const BatchPlanOptions& options,
                                             int64_t epoch);

/// A permutation of 0..n-1 drawn from (seed, epoch): Fisher-Yates on
/// std::mt19937_64 with a rejection-sampled bounded draw, so it is the same
/// with every compiler and standard library.
std::vector<int64_t> shuffled_rows(size_t n, uint64_t seed, int64_t epoch);

}  // namespace peftcpp::data
