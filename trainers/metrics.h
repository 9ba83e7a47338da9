#pragma once
// GLUE's metrics, computed as scikit-learn / scipy do (the numbers
// transformers' run_glue reports through `evaluate`). No LibTorch here.

#include <map>
#include <string>
#include <vector>

#include "data/dataset/glue.h"

namespace peftcpp::trainers {

/// Fraction of predictions equal to the labels.
double accuracy(const std::vector<int>& predictions,
                const std::vector<int>& labels);
/// Binary F1 of class 1 (sklearn f1_score; 0 when there is no true or
/// predicted positive).
double f1_binary(const std::vector<int>& predictions,
                 const std::vector<int>& labels);
/// Matthews correlation coefficient, multi-class form (sklearn
/// matthews_corrcoef; 0 when undefined).
double matthews_correlation(const std::vector<int>& predictions,
                            const std::vector<int>& labels);
/// Pearson's r (scipy.stats.pearsonr; NaN for a constant input).
double pearson(const std::vector<double>& x, const std::vector<double>& y);
/// Spearman's rho with average ranks for ties (scipy.stats.spearmanr).
double spearman(const std::vector<double>& x, const std::vector<double>& y);

/// The metrics asked for, by metric_name. `scores` are [N, num_labels]
/// row-major logits (classification: argmax is the prediction) or [N]
/// regression outputs; `labels` as in data::Example. Throws
/// std::invalid_argument for a metric that does not fit the task kind
/// (Pearson on classes) or mismatched sizes.
std::map<std::string, double> compute_metrics(
    const std::vector<data::Metric>& metrics, data::TaskKind kind,
    const std::vector<float>& scores, int64_t num_labels,
    const std::vector<float>& labels);

}  // namespace peftcpp::trainers
