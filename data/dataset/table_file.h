#pragma once
// A user's own labelled data: TSV, CSV (RFC 4180 quoting) or JSONL, with a
// column mapping (text, optional text pair, label) and a label set that is
// given or inferred. Also the line reading that the GLUE loader shares
// (BOM, CRLF, UTF-8 checks, messages that name the file and line).

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/dataset/labeled_dataset.h"

namespace peftcpp::data {

/// File formats; kAuto picks by extension (.tsv, .csv, .jsonl / .json).
/// TSV fields are split on tabs with no quoting (quotes are text, as in
/// GLUE's files); CSV follows RFC 4180 (quoted fields may hold commas,
/// doubled quotes and newlines).
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
/// valid UTF-8. Blank lines are skipped; a UTF-8 BOM and CRLF line ends are
/// accepted.
LabeledDataset load_table(const std::filesystem::path& path, TableFormat format,
                          const ColumnMapping& columns,
                          const LabelSpec& labels);

/// Sorted distinct labels as run_glue infers them (`unique().sort()`):
/// numerically when every label is an integer, else by bytes.
std::vector<std::string> infer_label_names(std::vector<std::string> labels);

/// Reads a text file line by line for the loaders: drops a UTF-8 BOM at the
/// start and a '\r' before each '\n', accepts a last line without '\n', and
/// refuses a line that is not UTF-8 (naming the line and byte). Throws
/// std::runtime_error when the file cannot be opened.
class LineReader {
 public:
  /// Opens `path`; `who` names the caller in the open error.
  LineReader(const std::filesystem::path& path, std::string_view who);

  /// The next line into `line`; false at the end of the file.
  bool next(std::string& line);
  /// 1-based number of the line last returned.
  size_t line_number() const { return line_number_; }
  /// "<path>:<line>" for messages about the line last returned.
  std::string where() const;
  /// "<path>:<line>" for any line.
  std::string where(size_t line) const;
  /// The file.
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::ifstream in_;
  size_t line_number_ = 0;
};

/// Splits a line on tabs, no quoting: GLUE's quotes are literal text.
std::vector<std::string_view> split_tabs(std::string_view line);

/// A value for an error message: quoted, cut to `max_chars` bytes.
std::string quote_value(std::string_view value, size_t max_chars = 60);

/// Parses a whole string as a finite number (surrounding spaces allowed).
std::optional<double> parse_number(std::string_view text);

}  // namespace peftcpp::data
