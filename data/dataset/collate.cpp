#include "data/dataset/collate.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "common/error.h"

namespace peftcpp::data {

Batch collate(const TokenizedDataset& dataset, const std::vector<int64_t>& rows,
              int64_t pad_id, c10::Device device) {
  if (rows.empty()) {
    throw std::invalid_argument(
        error_message("collate", "at least one row", "none"));
  }
  int64_t longest = 0;
  for (int64_t r : rows) {
    if (r < 0 || static_cast<size_t>(r) >= dataset.size()) {
      throw std::out_of_range(error_message(
          "collate", "row indices below " + std::to_string(dataset.size()),
          std::to_string(r)));
    }
    longest = std::max(longest, dataset.length(static_cast<size_t>(r)));
  }
  const auto b = static_cast<int64_t>(rows.size());
  const auto opts = at::TensorOptions().dtype(at::kLong);
  // Padding: pad id, type 0, mask 0, filled first and overwritten per row.
  at::Tensor ids = at::full({b, longest}, pad_id, opts);
  at::Tensor types = at::zeros({b, longest}, opts);
  at::Tensor mask = at::zeros({b, longest}, opts);
  const bool regression = dataset.kind == TaskKind::kRegression;
  const bool causal_lm = dataset.kind == TaskKind::kCausalLM;
  // A causal LM's labels are per token: the target ids, -100 elsewhere.
  at::Tensor labels =
      causal_lm ? at::full({b, longest}, -100, opts)
                : at::empty({b}, at::TensorOptions().dtype(
                                     regression ? at::kFloat : at::kLong));
  auto ids_a = ids.accessor<int64_t, 2>();
  auto types_a = types.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  Batch batch;
  for (int64_t i = 0; i < b; ++i) {
    const auto row = static_cast<size_t>(rows[static_cast<size_t>(i)]);
    const int64_t begin = dataset.offsets[row];
    const int64_t len = dataset.length(row);
    for (int64_t t = 0; t < len; ++t) {
      ids_a[i][t] = dataset.input_ids[static_cast<size_t>(begin + t)];
      types_a[i][t] = dataset.token_type_ids[static_cast<size_t>(begin + t)];
      mask_a[i][t] = 1;
    }
    batch.real_tokens += len;
    if (causal_lm) {
      // The type ids mark the targets; decoders take no token types.
      auto labels_a = labels.accessor<int64_t, 2>();
      for (int64_t t = 0; t < len; ++t) {
        if (types_a[i][t] == 1)
          labels_a[i][t] = ids_a[i][t];
        types_a[i][t] = 0;
      }
      continue;
    }
    const float label = dataset.labels[row];
    if (regression) {
      labels.data_ptr<float>()[i] = label;
    } else {
      // NaN (an unlabelled test row) -> -100, the index cross-entropy skips.
      labels.data_ptr<int64_t>()[i] =
          std::isnan(label) ? -100 : static_cast<int64_t>(label);
    }
  }
  batch.input_ids = ids.to(device);
  batch.attention_mask = mask.to(device);
  batch.token_type_ids = types.to(device);
  batch.labels = labels.to(device);
  return batch;
}

}  // namespace peftcpp::data
