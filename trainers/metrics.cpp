#include "trainers/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "common/error.h"

namespace peftcpp::trainers {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

template <typename T>
void check_pair(const char* where, const std::vector<T>& a,
                const std::vector<T>& b, size_t min_size) {
  if (a.size() != b.size())
    throw std::invalid_argument(
        error_message(where, "predictions and labels of the same length",
                      std::to_string(a.size()) + " predictions and " +
                          std::to_string(b.size()) + " labels"));
  if (a.size() < min_size)
    throw std::invalid_argument(error_message(
        where, "at least " + std::to_string(min_size) + " examples",
        std::to_string(a.size()),
        "evaluate on a set with more labelled examples"));
}

double mean_of(const std::vector<double>& v) {
  double sum = 0.0;
  for (double x : v)
    sum += x;
  return sum / static_cast<double>(v.size());
}

bool is_constant(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [&](double x) { return x == v[0]; });
}

// Pearson's r of two equally long vectors of n >= 2, two-pass:
//   r = sum(xm * ym) / (|xm| |ym|),  xm = x - mean(x),  ym = y - mean(y)
// with |xm| computed on xm / max|xm| (as scipy does) so that large values do
// not overflow the squares. Clipped to [-1, 1] against rounding.
double pearson_unchecked(const std::vector<double>& x,
                         const std::vector<double>& y) {
  const size_t n = x.size();
  const double mx = mean_of(x);
  const double my = mean_of(y);
  double max_x = 0.0;
  double max_y = 0.0;
  for (size_t i = 0; i < n; ++i) {
    max_x = std::max(max_x, std::abs(x[i] - mx));
    max_y = std::max(max_y, std::abs(y[i] - my));
  }
  double sxx = 0.0;
  double syy = 0.0;
  double sxy = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double a = (x[i] - mx) / max_x;
    const double b = (y[i] - my) / max_y;
    sxx += a * a;
    syy += b * b;
    sxy += a * b;
  }
  // The scale factors cancel: r = sum(a b) / (sqrt(sum a^2) sqrt(sum b^2)).
  const double r = sxy / (std::sqrt(sxx) * std::sqrt(syy));
  if (std::isnan(r))
    return r;
  return std::clamp(r, -1.0, 1.0);
}

// Average ranks, 1-based, as scipy.stats.rankdata(method="average"): tied
// values share the mean of the positions they occupy in sorted order.
std::vector<double> average_ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> ranks(v.size());
  size_t i = 0;
  while (i < order.size()) {
    size_t j = i + 1;
    while (j < order.size() && v[order[j]] == v[order[i]])
      ++j;
    // Positions i..j-1 (0-based) are ranks i+1..j: their mean is (i+1+j)/2.
    const double rank = 0.5 * static_cast<double>(i + 1 + j);
    for (size_t k = i; k < j; ++k)
      ranks[order[k]] = rank;
    i = j;
  }
  return ranks;
}

// Classification labels arrive as floats (data::Example::label); each must
// be a class index in [0, num_labels).
std::vector<int> class_labels(const std::vector<float>& labels,
                              int64_t num_labels) {
  std::vector<int> out(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    const float l = labels[i];
    if (!(l >= 0.0f && l < static_cast<float>(num_labels) &&
          l == std::floor(l)))
      throw std::invalid_argument(error_message(
          "compute_metrics",
          "class indices in [0, " + std::to_string(num_labels) + ")",
          std::to_string(l) + " as label of example " + std::to_string(i),
          std::isnan(l) ? "NaN marks an unlabelled example (a GLUE test "
                          "split); evaluate on a labelled split"
                        : ""));
    out[i] = static_cast<int>(l);
  }
  return out;
}

// Row-wise argmax of [N, K] row-major scores, the first maximum on ties and
// the first NaN if any (numpy's argmax, which transformers' run_glue uses).
std::vector<int> argmax_rows(const std::vector<float>& scores, size_t n,
                             int64_t k) {
  std::vector<int> out(n);
  for (size_t i = 0; i < n; ++i) {
    const float* row = scores.data() + i * static_cast<size_t>(k);
    int best = 0;
    for (int64_t j = 1; j < k && !std::isnan(row[best]); ++j) {
      if (std::isnan(row[j]) || row[j] > row[best])
        best = static_cast<int>(j);
    }
    out[i] = best;
  }
  return out;
}

bool is_class_metric(data::Metric m) {
  return m == data::Metric::kAccuracy || m == data::Metric::kF1 ||
         m == data::Metric::kMatthews;
}

}  // namespace

double accuracy(const std::vector<int>& predictions,
                const std::vector<int>& labels) {
  check_pair("accuracy", predictions, labels, 1);
  size_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i)
    correct += predictions[i] == labels[i] ? 1 : 0;
  return static_cast<double>(correct) / static_cast<double>(labels.size());
}

double f1_binary(const std::vector<int>& predictions,
                 const std::vector<int>& labels) {
  check_pair("f1", predictions, labels, 1);
  size_t tp = 0;
  size_t fp = 0;
  size_t fn = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    for (int v : {predictions[i], labels[i]}) {
      if (v != 0 && v != 1)
        throw std::invalid_argument(error_message(
            "f1", "binary classes 0 and 1",
            std::to_string(v) + " at example " + std::to_string(i),
            "binary F1 scores class 1; use accuracy or matthews_correlation "
            "for more classes"));
    }
    const bool p = predictions[i] == 1;
    const bool t = labels[i] == 1;
    tp += p && t ? 1 : 0;
    fp += p && !t ? 1 : 0;
    fn += !p && t ? 1 : 0;
  }
  // F1 = 2 tp / (2 tp + fp + fn); sklearn's zero_division gives 0 when no
  // example is positive and none is predicted positive.
  const size_t denominator = 2 * tp + fp + fn;
  if (denominator == 0)
    return 0.0;
  return static_cast<double>(2 * tp) / static_cast<double>(denominator);
}

double matthews_correlation(const std::vector<int>& predictions,
                            const std::vector<int>& labels) {
  check_pair("matthews_correlation", predictions, labels, 1);
  // sklearn's multi-class form (Gorodkin 2004) from the confusion matrix C
  // with t_k = row sums (true counts), p_k = column sums (predicted counts),
  // c = trace (correct), s = N:
  //   MCC = (c s - t.p) / sqrt((s^2 - p.p) (s^2 - t.t)),  0 if undefined.
  // Only these sums are needed, not C itself; all in double as sklearn.
  std::unordered_map<int, std::pair<double, double>> counts;  // class -> t, p
  double correct = 0.0;
  for (size_t i = 0; i < labels.size(); ++i) {
    counts[labels[i]].first += 1.0;
    counts[predictions[i]].second += 1.0;
    correct += predictions[i] == labels[i] ? 1.0 : 0.0;
  }
  const double s = static_cast<double>(labels.size());
  double tp_dot = 0.0;
  double pp_dot = 0.0;
  double tt_dot = 0.0;
  for (const auto& [label, tp] : counts) {
    tp_dot += tp.first * tp.second;
    pp_dot += tp.second * tp.second;
    tt_dot += tp.first * tp.first;
  }
  const double cov_ytyp = correct * s - tp_dot;
  const double cov_ypyp = s * s - pp_dot;
  const double cov_ytyt = s * s - tt_dot;
  const double denominator = cov_ypyp * cov_ytyt;
  if (denominator == 0.0)
    return 0.0;  // constant predictions or labels: sklearn returns 0
  return cov_ytyp / std::sqrt(denominator);
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  check_pair("pearson", x, y, 2);
  if (is_constant(x) || is_constant(y))
    return kNaN;  // undefined (scipy warns and returns NaN)
  const double r = pearson_unchecked(x, y);
  // scipy returns exactly +-1 for two points (the only possible values).
  return x.size() == 2 && !std::isnan(r) ? std::round(r) : r;
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  check_pair("spearmanr", x, y, /*min_size=*/0);
  // scipy: NaN for fewer than two points, a constant input or any NaN
  // (nan_policy="propagate"); otherwise Pearson's r of the average ranks.
  if (x.size() < 2 || is_constant(x) || is_constant(y))
    return kNaN;
  const auto has_nan = [](const std::vector<double>& v) {
    return std::any_of(v.begin(), v.end(),
                       [](double d) { return std::isnan(d); });
  };
  if (has_nan(x) || has_nan(y))
    return kNaN;
  return pearson_unchecked(average_ranks(x), average_ranks(y));
}

std::map<std::string, double> compute_metrics(
    const std::vector<data::Metric>& metrics, data::TaskKind kind,
    const std::vector<float>& scores, int64_t num_labels,
    const std::vector<float>& labels) {
  const bool classification = kind == data::TaskKind::kClassification;
  const int64_t width = classification ? num_labels : 1;
  if (classification ? num_labels < 2 : num_labels != 1)
    throw std::invalid_argument(
        error_message("compute_metrics",
                      classification ? "num_labels >= 2 for classification"
                                     : "num_labels == 1 for regression",
                      std::to_string(num_labels)));
  if (labels.empty())
    throw std::invalid_argument(
        error_message("compute_metrics", "at least one example", "none"));
  if (scores.size() != labels.size() * static_cast<size_t>(width))
    throw std::invalid_argument(error_message(
        "compute_metrics",
        std::to_string(labels.size()) + " x " + std::to_string(width) +
            " scores for " + std::to_string(labels.size()) + " labels",
        std::to_string(scores.size()) + " scores",
        "scores are [N, num_labels] row-major logits or [N] regression "
        "outputs"));
  for (data::Metric m : metrics) {
    if (is_class_metric(m) != classification)
      throw std::invalid_argument(error_message(
          "compute_metrics",
          classification ? "a classification metric (accuracy, f1, "
                           "matthews_correlation)"
                         : "a regression metric (pearson, spearmanr)",
          data::metric_name(m),
          "the metric does not fit the task's label kind"));
    if (m == data::Metric::kF1 && num_labels != 2)
      throw std::invalid_argument(error_message(
          "compute_metrics", "2 classes for f1 (binary)",
          std::to_string(num_labels) + " classes",
          "use accuracy or matthews_correlation for more classes"));
  }

  std::map<std::string, double> out;
  if (classification) {
    const std::vector<int> truth = class_labels(labels, num_labels);
    const std::vector<int> predicted =
        argmax_rows(scores, labels.size(), num_labels);
    for (data::Metric m : metrics) {
      double value = 0.0;
      if (m == data::Metric::kAccuracy)
        value = accuracy(predicted, truth);
      else if (m == data::Metric::kF1)
        value = f1_binary(predicted, truth);
      else
        value = matthews_correlation(predicted, truth);
      out[data::metric_name(m)] = value;
    }
    return out;
  }
  const std::vector<double> predicted(scores.begin(), scores.end());
  const std::vector<double> truth(labels.begin(), labels.end());
  for (size_t i = 0; i < truth.size(); ++i) {
    if (std::isnan(truth[i]))
      throw std::invalid_argument(error_message(
          "compute_metrics", "a labelled example",
          "NaN as label of example " + std::to_string(i),
          "NaN marks an unlabelled example (a GLUE test split); evaluate on "
          "a labelled split"));
  }
  for (data::Metric m : metrics) {
    out[data::metric_name(m)] = m == data::Metric::kPearson
                                    ? pearson(predicted, truth)
                                    : spearman(predicted, truth);
  }
  return out;
}

}  // namespace peftcpp::trainers
