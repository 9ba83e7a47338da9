#pragma once
// A user's own labelled data: TSV, CSV (RFC 4180 quoting) or JSONL, with a
// column mapping (text, optional text pair, label) and a label set that is
// given or inferred.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset/labeled_dataset.h"

namespace peftcpp::data {

/// File formats; kAuto picks by extension (.tsv, .csv, .jsonl / .json).
enum class TableFormat { kAuto, kTsv, kCsv, kJsonl };

/// "auto", "tsv", "csv", "jsonl"; std::invalid_argument otherwise.
TableFormat parse_table_format(const std::string& name);

/// Which columns (TSV/CSV header names, JSONL keys) hold what. A TSV/CSV
/// without a header names its columns by 0-based index ("0", "3").
struct ColumnMapping {
  std::string text = "text";
  std::optional<std::string> text_pair;  ///< unset: single sentences
  std::string label = "label";
  bool has_header = true;  ///< TSV / CSV only
};

/// How labels are read.
struct LabelSpec {
  TaskKind kind = TaskKind::kClassification;
  /// Classification: the allowed labels in index order. Empty: inferred
  /// from the training file (sorted; numerically when all are integers).
  std::vector<std::string> label_names;
};

/// Reads a table. Throws std::runtime_error with the file and 1-based line
/// for an empty file, a missing column (listing the columns there are), a
/// label outside `labels.label_names` (when given), a regression label that
/// is not a number, malformed JSON or CSV quoting, and a line that is not
/// valid UTF-8.
LabeledDataset load_table(const std::filesystem::path& path,
                          TableFormat format, const ColumnMapping& columns,
                          const LabelSpec& labels);

}  // namespace peftcpp::data
