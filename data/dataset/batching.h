#pragma once
// Which rows go into which batch, per epoch: in order, shuffled by seed, or
// grouped by length (transformers' LengthGroupedSampler: shuffle, cut into
// mega-batches of 50 batches, sort each by length, longest batch first) so
// dynamic padding wastes little. Deterministic in (seed, epoch) on every
// platform: our own generator use, not std::shuffle's unspecified one.

#include <cstdint>
#include <vector>

#include "data/dataset/tokenized_dataset.h"

namespace peftcpp::data {

/// How to batch.
struct BatchPlanOptions {
  int64_t batch_size = 32;
  bool shuffle = true;
  bool group_by_length = false;
  uint64_t seed = 42;
  bool drop_last = false;
};

/// The batches of one epoch as row indices. Same (dataset, options, epoch)
/// -> same plan; a resumed run skips the batches it already did.
std::vector<std::vector<int64_t>> plan_epoch(const TokenizedDataset& dataset,
                                             const BatchPlanOptions& options,
                                             int64_t epoch);

}  // namespace peftcpp::data
