#include "data/dataset/labeled_dataset.h"

namespace peftcpp::data {

void keep_first(LabeledDataset& dataset, int64_t n) {
  // n < 0 is "all" (the configs' max_train_examples = -1 default); a
  // larger n than there are rows keeps everything, as HF's select(range).
  if (n < 0 || static_cast<size_t>(n) >= dataset.examples.size())
    return;
  dataset.examples.resize(static_cast<size_t>(n));
}

}  // namespace peftcpp::data
