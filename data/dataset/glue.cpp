#include "data/dataset/glue.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>

#include "common/error.h"
#include "data/dataset/table_file.h"

namespace peftcpp::data {

namespace fs = std::filesystem;

namespace {

/// Where a task's fields are in its TSV files, by header name (as HF
/// datasets' glue builder reads them).
struct GlueColumns {
  std::string text;
  std::string pair;  // "" for single-sentence tasks
  std::string label;
};

GlueColumns columns_of(const std::string& task) {
  if (task == "cola" || task == "sst2")
    return {"sentence", "", "label"};
  if (task == "mrpc")
    return {"#1 String", "#2 String", "Quality"};
  if (task == "stsb")
    return {"sentence1", "sentence2", "score"};
  if (task == "qqp")
    return {"question1", "question2", "is_duplicate"};
  if (task == "mnli")
    return {"sentence1", "sentence2", "gold_label"};
  if (task == "qnli")
    return {"question", "sentence", "label"};
  return {"sentence1", "sentence2", "label"};  // rte, wnli
}

std::string normalize_name(std::string_view name) {
  std::string out;
  for (unsigned char c : name) {
    if (std::isalnum(c))
      out += static_cast<char>(std::tolower(c));
  }
  return out;
}

size_t header_column(const std::vector<std::string_view>& header,
                     const std::string& name, const std::string& where,
                     const GlueTask& task) {
  auto it = std::find(header.begin(), header.end(), name);
  if (it != header.end())
    return static_cast<size_t>(it - header.begin());
  std::vector<std::string> quoted;
  for (auto h : header)
    quoted.push_back(quote_value(h));
  throw std::runtime_error(error_message(
      where,
      "a column " + quote_value(name) + " (GLUE's " + task.folder + " layout)",
      "the columns " + join_names(quoted, ", ", 30),
      "is this the " + task.folder + " folder of the GLUE download?"));
}

}  // namespace

std::string metric_name(Metric metric) {
  switch (metric) {
    case Metric::kAccuracy:
      return "accuracy";
    case Metric::kF1:
      return "f1";
    case Metric::kMatthews:
      return "matthews_correlation";
    case Metric::kPearson:
      return "pearson";
    case Metric::kSpearman:
      return "spearmanr";
  }
  return "accuracy";
}

Metric parse_metric(const std::string& name) {
  for (Metric m : {Metric::kAccuracy, Metric::kF1, Metric::kMatthews,
                   Metric::kPearson, Metric::kSpearman}) {
    if (metric_name(m) == name)
      return m;
  }
  throw std::invalid_argument(error_message(
      "parse_metric",
      "one of accuracy, f1, matthews_correlation, pearson, spearmanr",
      quote_value(name)));
}

const std::vector<GlueTask>& glue_tasks() {
  using M = Metric;
  const std::vector<std::string> binary{"0", "1"};
  const std::vector<std::string> entail{"entailment", "not_entailment"};
  static const std::vector<GlueTask> kTasks{
      {"cola",
       "CoLA",
       TaskKind::kClassification,
       binary,
       {M::kMatthews},
       M::kMatthews},
      {"sst2",
       "SST-2",
       TaskKind::kClassification,
       binary,
       {M::kAccuracy},
       M::kAccuracy},
      {"mrpc",
       "MRPC",
       TaskKind::kClassification,
       binary,
       {M::kAccuracy, M::kF1},
       M::kAccuracy},
      {"stsb",
       "STS-B",
       TaskKind::kRegression,
       {},
       {M::kPearson, M::kSpearman},
       M::kPearson},
      {"qqp",
       "QQP",
       TaskKind::kClassification,
       binary,
       {M::kAccuracy, M::kF1},
       M::kAccuracy},
      // HF's ClassLabel order, so class ids match run_glue's checkpoints.
      {"mnli",
       "MNLI",
       TaskKind::kClassification,
       {"entailment", "neutral", "contradiction"},
       {M::kAccuracy},
       M::kAccuracy,
       "dev_matched"},
      {"qnli",
       "QNLI",
       TaskKind::kClassification,
       entail,
       {M::kAccuracy},
       M::kAccuracy},
      {"rte",
       "RTE",
       TaskKind::kClassification,
       entail,
       {M::kAccuracy},
       M::kAccuracy},
      {"wnli",
       "WNLI",
       TaskKind::kClassification,
       binary,
       {M::kAccuracy},
       M::kAccuracy},
  };
  return kTasks;
}

const GlueTask& glue_task(std::string_view name) {
  const std::string key = normalize_name(name);
  for (const auto& t : glue_tasks()) {
    if (t.name == key)
      return t;
  }
  std::vector<std::string> names;
  for (const auto& t : glue_tasks())
    names.push_back(t.name);
  throw std::out_of_range(
      error_message("glue_task", "a GLUE task (" + join_names(names) + ")",
                    quote_value(name)));
}

LabeledDataset load_glue_split(const GlueTask& task, const fs::path& task_dir,
                               const std::string& split) {
  fs::path path = task_dir / (split + ".tsv");
  std::error_code ec;
  // Also accept the GLUE root that holds the task's folder.
  if (!fs::exists(path, ec) &&
      fs::exists(task_dir / task.folder / (split + ".tsv"), ec))
    path = task_dir / task.folder / (split + ".tsv");
  if (!fs::is_regular_file(path, ec)) {
    throw std::runtime_error(error_message(
        "load_glue_split",
        "the " + task.folder + " file " + quote_value(path.string(), 300),
        "no such file",
        "point at GLUE's " + task.folder + " folder (" + split +
            ".tsv inside) or at the GLUE root"));
  }
  LineReader reader(path, "load_glue_split");
  const GlueColumns cols = columns_of(task.name);
  std::string line;
  if (!reader.next(line)) {
    throw std::runtime_error(error_message(
        reader.where(1), "GLUE's " + task.folder + " rows", "an empty file"));
  }
  // CoLA's train and dev files have no header: source, label, original
  // label, sentence. Its test file has one ("index", "sentence").
  const bool headerless = task.name == "cola" && split_tabs(line).size() == 4 &&
                          split_tabs(line)[0] != "index";
  size_t width = 4, text_col = 3, label_col = 1;
  bool has_label = true;
  std::optional<size_t> pair_col;
  if (!headerless) {
    const auto header = split_tabs(line);
    const std::string where = reader.where();
    width = header.size();
    text_col = header_column(header, cols.text, where, task);
    if (!cols.pair.empty())
      pair_col = header_column(header, cols.pair, where, task);
    if (std::find(header.begin(), header.end(), cols.label) != header.end()) {
      label_col = header_column(header, cols.label, where, task);
    } else if (split.rfind("test", 0) == 0) {
      has_label = false;  // GLUE's test files carry no labels
    } else {
      header_column(header, cols.label, where, task);  // throws
    }
  }
  const std::string header_line = std::to_string(reader.line_number());

  LabeledDataset out;
  out.kind = task.kind;
  out.label_names = task.label_names;
  out.source = path;
  bool have = headerless || reader.next(line);
  for (; have; have = reader.next(line)) {
    if (line.empty())
      continue;  // csv.DictReader skips blank lines too
    const auto fields = split_tabs(line);
    if (fields.size() != width) {
      throw std::runtime_error(error_message(
          reader.where(),
          std::to_string(width) + " tab-separated fields" +
              (headerless ? std::string()
                          : " as in the header (line " + header_line + ")"),
          std::to_string(fields.size()),
          "a tab inside a sentence, or another task's file?"));
    }
    Example e;
    e.text = std::string(fields[text_col]);
    if (pair_col)
      e.text_pair = std::string(fields[*pair_col]);
    if (!has_label) {
      e.label = std::numeric_limits<float>::quiet_NaN();
    } else if (task.kind == TaskKind::kRegression) {
      const auto v = parse_number(fields[label_col]);
      if (!v) {
        throw std::runtime_error(error_message(
            reader.where(), "a number in column " + quote_value(cols.label),
            quote_value(fields[label_col])));
      }
      e.label = static_cast<float>(*v);
    } else {
      const auto value = fields[label_col];
      auto it =
          std::find(task.label_names.begin(), task.label_names.end(), value);
      if (it == task.label_names.end()) {
        throw std::runtime_error(
            error_message(reader.where(),
                          "a label in {" + join_names(task.label_names) +
                              "} (GLUE " + task.folder + ")",
                          value.empty() ? std::string("an empty field")
                                        : quote_value(value)));
      }
      e.label = static_cast<float>(it - task.label_names.begin());
    }
    out.examples.push_back(std::move(e));
  }
  if (out.examples.empty()) {
    throw std::runtime_error(
        error_message(reader.where(1), "at least one example",
                      headerless ? "an empty file" : "only a header"));
  }
  return out;
}

}  // namespace peftcpp::data
