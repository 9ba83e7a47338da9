#pragma once
// Rows of a tokenized dataset -> the tensors of one batch, padded only to
// the batch's own longest row (dynamic padding).

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <vector>

#include "data/dataset/tokenized_dataset.h"

namespace peftcpp::data {

/// One batch. Padding positions: pad id, type 0, mask 0.
struct Batch {
  at::Tensor input_ids;       ///< [B, T] int64
  at::Tensor attention_mask;  ///< [B, T] int64
  at::Tensor token_type_ids;  ///< [B, T] int64
  /// [B] int64 (classification) or float32 (regression); [B, T] int64 for
  /// a causal LM: the input ids of target tokens, -100 on the prompt and
  /// padding (the model shifts them by one).
  at::Tensor labels;
  int64_t real_tokens = 0;  ///< sum of the row lengths
};

/// Collates `rows` of `dataset`, padding with `pad_id`, on `device`.
/// Classification labels that are NaN (unlabelled test rows) become -100,
/// the index cross-entropy ignores. Throws std::invalid_argument for no
/// rows and std::out_of_range for a row index outside the dataset.
Batch collate(const TokenizedDataset& dataset, const std::vector<int64_t>& rows,
              int64_t pad_id, c10::Device device = c10::kCPU);

}  // namespace peftcpp::data
