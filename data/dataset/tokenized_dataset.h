#pragma once
// A labelled dataset after tokenization, stored flat (one id array and
// offsets) so 67k SST-2 sentences are a few MB, plus an HDF5 cache keyed by
// the data, the tokenizer and the options: a second run reads it instead of
// tokenizing again; a cache that is corrupt or was made for other inputs is
// detected (stored key and checksum) and rebuilt, never trusted.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset/labeled_dataset.h"
#include "data/tokenizer/tokenizer.h"

namespace peftcpp::data {

/// Tokenized examples. Row i has tokens [offsets[i], offsets[i+1]).
struct TokenizedDataset {
  std::vector<int32_t> input_ids;
  std::vector<int8_t> token_type_ids;
  std::vector<int64_t> offsets{0};  ///< size() + 1 entries
  std::vector<float> labels;        ///< one per row (see Example::label)
  TaskKind kind = TaskKind::kClassification;
  std::vector<std::string> label_names;

  size_t size() const { return labels.size(); }
  int64_t length(size_t row) const { return offsets[row + 1] - offsets[row]; }
  int64_t num_labels() const {
    return kind == TaskKind::kRegression
               ? 1
               : static_cast<int64_t>(label_names.size());
  }
};

/// How examples are turned into tokens.
struct TokenizeDatasetOptions {
  /// Longest row in tokens, special tokens included (truncation
  /// longest_first, as transformers' run_glue).
  size_t max_length = 128;
  /// Show a progress bar (large files).
  bool show_progress = false;
};

/// The EncodeOptions tokenize_dataset passes to the tokenizer: special
/// tokens, longest_first truncation at max_length, no padding.
EncodeOptions dataset_encode_options(const TokenizeDatasetOptions& options);

/// Tokenizes every example (with the tokenizer's special tokens), in
/// parallel. Throws std::invalid_argument for max_length 0 or a dataset
/// that mixes pairs and single sentences.
TokenizedDataset tokenize_dataset(const LabeledDataset& dataset,
                                  const Tokenizer& tokenizer,
                                  const TokenizeDatasetOptions& options);

/// What tokenize_cached did.
enum class CacheOutcome { kHit, kCreated, kRebuiltCorrupt, kRebuiltStale };

/// tokenize_dataset through an HDF5 file in `cache_dir`, named by a key
/// over the examples, the tokenizer's files (`tokenizer_fingerprint`) and
/// the options. Reports what happened in `outcome` (when given) and why a
/// cache was rebuilt in `detail`. The file stores the key and a checksum
/// of the arrays; a file that fails to open or read, or whose key,
/// structure or checksum does not match, is rebuilt (written to a
/// temporary file and renamed). Throws std::runtime_error when the cache
/// cannot be written. HDF5's own error printing is switched off.
TokenizedDataset tokenize_cached(const LabeledDataset& dataset,
                                 const Tokenizer& tokenizer,
                                 const std::string& tokenizer_fingerprint,
                                 const TokenizeDatasetOptions& options,
                                 const std::filesystem::path& cache_dir,
                                 CacheOutcome* outcome = nullptr,
                                 std::string* detail = nullptr);

/// The cache file tokenize_cached reads and writes for these inputs:
/// `<cache_dir>/<hash of the key>.h5`.
std::filesystem::path tokenized_cache_path(
    const LabeledDataset& dataset, const std::string& tokenizer_fingerprint,
    const TokenizeDatasetOptions& options,
    const std::filesystem::path& cache_dir);

/// A stable hash (hex) of the tokenizer files in a model folder
/// (tokenizer.json, vocab.txt, tokenizer_config.json, special tokens ...),
/// or of one file when given a file. Throws std::runtime_error when there
/// is no tokenizer file.
std::string tokenizer_fingerprint(const std::filesystem::path& model_dir);

}  // namespace peftcpp::data
