#include "data/dataset/tokenized_dataset.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <stdexcept>

#include "common/error.h"
#include "common/progress.h"

namespace peftcpp::data {

EncodeOptions dataset_encode_options(const TokenizeDatasetOptions& options) {
  // tokenizer(text, pair, truncation=True, max_length=N) in transformers:
  // longest_first, special tokens added, no padding (the collator pads).
  EncodeOptions o;
  o.add_special_tokens = true;
  o.max_length = options.max_length;
  o.truncation = TruncationStrategy::kLongestFirst;
  o.padding = PaddingStrategy::kDoNotPad;
  return o;
}

TokenizedDataset tokenize_dataset(const LabeledDataset& dataset,
                                  const Tokenizer& tokenizer,
                                  const TokenizeDatasetOptions& options) {
  if (options.max_length == 0) {
    throw std::invalid_argument(error_message("tokenize_dataset",
                                              "max_length > 0", "0",
                                              "128 is run_glue's default"));
  }
  const bool pairs = dataset.has_pairs();
  for (size_t i = 0; i < dataset.size(); ++i) {
    // Pairs and single sentences cannot share one tokenized set: a model
    // would see token types from some rows only.
    if (dataset.examples[i].text_pair.has_value() != pairs) {
      throw std::invalid_argument(error_message(
          "tokenize_dataset",
          std::string("every example ") + (pairs ? "a pair" : "single"),
          "example " + std::to_string(i) + " is " +
              (pairs ? "single" : "a pair"),
          "read from " + dataset.source.string()));
    }
  }
  const EncodeOptions encode = dataset_encode_options(options);

  TokenizedDataset out;
  out.kind = dataset.kind;
  out.label_names = dataset.label_names;
  out.labels.reserve(dataset.size());
  out.offsets.reserve(dataset.size() + 1);
  out.input_ids.reserve(dataset.size() * 24);
  out.token_type_ids.reserve(dataset.size() * 24);

  std::optional<ProgressBar> bar;
  if (options.show_progress)
    bar.emplace("tokenize", static_cast<int64_t>(dataset.size()), "ex");
  // Chunks keep the Encodings (token strings included) of a few thousand
  // rows alive at a time; encode_batch spreads each chunk over all cores.
  constexpr size_t kChunk = 4096;
  std::vector<TextInput> inputs;
  for (size_t begin = 0; begin < dataset.size(); begin += kChunk) {
    const size_t end = std::min(dataset.size(), begin + kChunk);
    inputs.clear();
    for (size_t i = begin; i < end; ++i) {
      const Example& e = dataset.examples[i];
      inputs.push_back({e.text, e.text_pair});
    }
    const std::vector<Encoding> encodings =
        tokenizer.encode_batch(inputs, encode);
    for (size_t k = 0; k < encodings.size(); ++k) {
      const Encoding& enc = encodings[k];
      for (size_t t = 0; t < enc.size(); ++t) {
        if (enc.ids[t] < 0 ||
            enc.ids[t] > std::numeric_limits<int32_t>::max() ||
            enc.type_ids[t] < 0 || enc.type_ids[t] > 127) {
          throw std::runtime_error(error_message(
              "tokenize_dataset", "ids in int32 and type ids in 0..127",
              "id " + std::to_string(enc.ids[t]) + ", type id " +
                  std::to_string(enc.type_ids[t]) + " in example " +
                  std::to_string(begin + k)));
        }
        out.input_ids.push_back(static_cast<int32_t>(enc.ids[t]));
        out.token_type_ids.push_back(static_cast<int8_t>(enc.type_ids[t]));
      }
      out.offsets.push_back(static_cast<int64_t>(out.input_ids.size()));
      out.labels.push_back(dataset.examples[begin + k].label);
    }
    if (bar)
      bar->advance(static_cast<int64_t>(end - begin));
  }
  if (bar)
    bar->finish();
  out.input_ids.shrink_to_fit();
  out.token_type_ids.shrink_to_fit();
  return out;
}

}  // namespace peftcpp::data
