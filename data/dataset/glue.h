#pragma once
// The nine GLUE tasks in the layouts GLUE ships them (data/glue's README
// lists the quirks: a BOM on MRPC's header, no header on CoLA, no final
// newline, literal quotes that are not CSV quoting, trailing spaces).

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "data/dataset/labeled_dataset.h"

namespace peftcpp::data {

/// How a task is scored; names as Hugging Face `evaluate` reports them.
enum class Metric {
  kAccuracy,  ///< "accuracy"
  kF1,        ///< "f1" (binary, positive class 1)
  kMatthews,  ///< "matthews_correlation"
  kPearson,   ///< "pearson"
  kSpearman,  ///< "spearmanr"
};

/// "accuracy", "f1", "matthews_correlation", "pearson", "spearmanr".
std::string metric_name(Metric metric);
/// The inverse of metric_name; std::invalid_argument listing the names.
Metric parse_metric(const std::string& name);

/// A GLUE task: where its columns are and how it is scored.
struct GlueTask {
  std::string name;  ///< "cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli",
                     ///< "rte", "wnli"
  std::string folder;  ///< GLUE's folder name: "CoLA", "SST-2", "STS-B", ...
  TaskKind kind = TaskKind::kClassification;
  std::vector<std::string> label_names;  ///< as written in the files
  std::vector<Metric> metrics;           ///< all reported
  Metric primary;                 ///< the one that picks the best checkpoint
  std::string dev_split = "dev";  ///< "dev_matched" for MNLI
};

/// Looks a task up by name, case- and punctuation-insensitive ("SST-2",
/// "sst2", "sts-b"); std::out_of_range listing the tasks.
const GlueTask& glue_task(std::string_view name);
/// All nine, in GLUE's order.
const std::vector<GlueTask>& glue_tasks();

/// Reads `<task_dir>/<split>.tsv` ("train", "dev", "dev_matched", "test").
/// Throws std::runtime_error with the file and line for a missing file, an
/// empty file, a missing column, a label outside the task's label set or a
/// line that is not UTF-8. Test files (no labels) give NaN labels.
LabeledDataset load_glue_split(const GlueTask& task,
                               const std::filesystem::path& task_dir,
                               const std::string& split);

}  // namespace peftcpp::data
