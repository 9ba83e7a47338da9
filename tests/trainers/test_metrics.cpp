// GLUE metrics against scikit-learn and scipy: the reference values come
// from tests/fixtures/make_trainer_refs.py (metrics.json), on random,
// tie-heavy and degenerate inputs (one class, constant predictions, two
// points, large offsets). Refusals are checked by message.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/test_paths.h"
#include "trainers/metrics.h"

using nlohmann::json;
using peftcpp::data::Metric;
using peftcpp::data::TaskKind;
namespace trainers = peftcpp::trainers;

namespace {

json load_ref(const std::string& name) {
  const auto path = peftcpp::testing::fixture_dir() / "trainer_refs" / name;
  std::ifstream in(path);
  INFO("reference file " << path.string()
                         << " (written by make_trainer_refs.py)");
  REQUIRE(in.good());
  return json::parse(in);
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A JSON number, or NaN for null (the script writes NaN as null).
double number_or_nan(const json& j) {
  return j.is_null() ? kNaN : j.get<double>();
}

// |a - b|, 0 when both are NaN, infinite when only one is.
double deviation(double got, double expected) {
  if (std::isnan(got) || std::isnan(expected))
    return std::isnan(got) && std::isnan(expected)
               ? 0.0
               : std::numeric_limits<double>::infinity();
  return std::abs(got - expected);
}

}  // namespace

TEST_CASE("accuracy, binary F1 and Matthews correlation equal scikit-learn's",
          "[trainers][metrics]") {
  const json ref = load_ref("metrics.json");
  double max_dev = 0.0;
  size_t cases = 0;
  for (const json& c : ref.at("classification")) {
    const std::string name = c.at("name");
    INFO("case: " << name);
    const auto pred = c.at("predictions").get<std::vector<int>>();
    const auto label = c.at("labels").get<std::vector<int>>();
    const double acc = trainers::accuracy(pred, label);
    const double mcc = trainers::matthews_correlation(pred, label);
    CHECK(deviation(acc, c.at("accuracy")) <= 1e-15);
    CHECK(deviation(mcc, c.at("matthews_correlation")) <= 1e-15);
    max_dev = std::max({max_dev, deviation(acc, c.at("accuracy")),
                        deviation(mcc, c.at("matthews_correlation"))});
    if (!c.at("f1").is_null()) {
      const double f1 = trainers::f1_binary(pred, label);
      CHECK(deviation(f1, c.at("f1")) <= 1e-15);
      max_dev = std::max(max_dev, deviation(f1, c.at("f1")));
    } else {
      CHECK_THROWS_AS(trainers::f1_binary(pred, label), std::invalid_argument);
    }
    ++cases;
  }
  CHECK(cases >= 10);
  std::printf("classification metrics: %zu cases, max |d| vs sklearn %.3g\n",
              cases, max_dev);
}

TEST_CASE("Pearson and Spearman equal scipy's, ties ranked by their average",
          "[trainers][metrics]") {
  const json ref = load_ref("metrics.json");
  double max_dev = 0.0;
  size_t cases = 0;
  for (const json& c : ref.at("regression")) {
    const std::string name = c.at("name");
    INFO("case: " << name);
    const auto x = c.at("x").get<std::vector<double>>();
    const auto y = c.at("y").get<std::vector<double>>();
    const double r = trainers::pearson(x, y);
    const double rho = trainers::spearman(x, y);
    INFO("pearson " << r << " vs " << c.at("pearson").dump() << ", spearman "
                    << rho << " vs " << c.at("spearmanr").dump());
    CHECK(deviation(r, number_or_nan(c.at("pearson"))) <= 1e-12);
    CHECK(deviation(rho, number_or_nan(c.at("spearmanr"))) <= 1e-12);
    max_dev = std::max({max_dev, deviation(r, number_or_nan(c.at("pearson"))),
                        deviation(rho, number_or_nan(c.at("spearmanr")))});
    ++cases;
  }
  CHECK(cases >= 10);
  std::printf("correlations: %zu cases, max |d| vs scipy %.3g\n", cases,
              max_dev);
}

TEST_CASE(
    "compute_metrics takes the argmax of logits (first on ties) or the "
    "regression output, as run_glue does",
    "[trainers][metrics]") {
  const json ref = load_ref("metrics.json");
  double max_dev = 0.0;
  for (const json& c : ref.at("compute_metrics")) {
    const std::string name = c.at("name");
    INFO("case: " << name);
    const bool classification = c.at("kind") == "classification";
    std::vector<Metric> metrics;
    for (const auto& [key, value] : c.at("expected").items())
      metrics.push_back(peftcpp::data::parse_metric(key));
    const auto scores = c.at("scores").get<std::vector<float>>();
    const auto labels = c.at("labels").get<std::vector<float>>();
    const auto got = trainers::compute_metrics(
        metrics,
        classification ? TaskKind::kClassification : TaskKind::kRegression,
        scores, c.at("num_labels").get<int64_t>(), labels);
    REQUIRE(got.size() == metrics.size());
    for (const auto& [key, value] : c.at("expected").items()) {
      INFO("metric " << key);
      REQUIRE(got.count(key) == 1);
      const double dev = deviation(got.at(key), value.get<double>());
      CHECK(dev <= (classification ? 1e-15 : 1e-12));
      max_dev = std::max(max_dev, dev);
    }
  }
  std::printf("compute_metrics: max |d| vs run_glue's %.3g\n", max_dev);
}

TEST_CASE("degenerate inputs give what scipy and sklearn give",
          "[trainers][metrics]") {
  // Constant predictions: MCC is undefined and reported as 0.
  CHECK(trainers::matthews_correlation({1, 1, 1, 1}, {0, 1, 0, 1}) == 0.0);
  CHECK(trainers::matthews_correlation({0, 1, 2}, {2, 2, 2}) == 0.0);
  // No positives anywhere: F1 is 0 (zero_division).
  CHECK(trainers::f1_binary({0, 0}, {0, 0}) == 0.0);
  // Constant inputs: NaN, not a number that looks like a result.
  CHECK(std::isnan(trainers::pearson({1, 1, 1}, {1, 2, 3})));
  CHECK(std::isnan(trainers::spearman({1, 2, 3}, {4, 4, 4})));
  // NaN propagates.
  CHECK(std::isnan(trainers::pearson({1, kNaN, 3}, {1, 2, 3})));
  CHECK(std::isnan(trainers::spearman({1, kNaN, 3}, {1, 2, 3})));
  // Spearman of fewer than two points is NaN (scipy); Pearson refuses them.
  CHECK(std::isnan(trainers::spearman({1.0}, {2.0})));
  CHECK_THROWS_WITH(trainers::pearson({1.0}, {2.0}),
                    Catch::Contains("[pearson] expected at least 2 examples"));
  // Two points: exactly +-1.
  CHECK(trainers::pearson({0.1, 0.7}, {3.0, 1.0}) == -1.0);
  // Rank correlation is invariant under monotone maps, with ties averaged:
  // ranks of {3, 1, 3, 2} are {3.5, 1, 3.5, 2}.
  CHECK(trainers::spearman({3, 1, 3, 2}, {30, 10, 30, 20}) ==
        Approx(1.0).margin(1e-15));
  CHECK(trainers::spearman({3, 1, 3, 2}, {std::exp(3.0), std::exp(1.0),
                                          std::exp(3.0), std::exp(2.0)}) ==
        Approx(1.0).margin(1e-15));
}

TEST_CASE("mismatched or unusable inputs are refused with what was wrong",
          "[trainers][metrics]") {
  CHECK_THROWS_WITH(
      trainers::accuracy({0, 1}, {0}),
      Catch::Contains("[accuracy] expected predictions and labels of the "
                      "same length, got 2 predictions and 1 labels"));
  CHECK_THROWS_WITH(trainers::accuracy({}, {}),
                    Catch::Contains("at least 1 examples"));
  CHECK_THROWS_WITH(trainers::f1_binary({0, 2}, {0, 1}),
                    Catch::Contains("expected binary classes 0 and 1, got 2 "
                                    "at example 1") &&
                        Catch::Contains("hint:"));
  CHECK_THROWS_AS(trainers::spearman({1, 2}, {1}), std::invalid_argument);

  const std::vector<float> logits = {0.1f, 0.9f, 0.8f, 0.2f};
  // A regression metric on a classification task and the reverse.
  CHECK_THROWS_WITH(
      trainers::compute_metrics({Metric::kPearson}, TaskKind::kClassification,
                                logits, 2, {1, 0}),
      Catch::Contains("expected a classification metric") &&
          Catch::Contains("got pearson"));
  CHECK_THROWS_WITH(
      trainers::compute_metrics({Metric::kAccuracy}, TaskKind::kRegression,
                                {0.5f, 0.7f}, 1, {0.4f, 0.9f}),
      Catch::Contains("expected a regression metric") &&
          Catch::Contains("got accuracy"));
  // Scores that are not [N, num_labels].
  CHECK_THROWS_WITH(
      trainers::compute_metrics({Metric::kAccuracy}, TaskKind::kClassification,
                                logits, 2, {1, 0, 1}),
      Catch::Contains("expected 3 x 2 scores for 3 labels, got 4 scores"));
  // F1 of three classes.
  CHECK_THROWS_WITH(
      trainers::compute_metrics({Metric::kF1}, TaskKind::kClassification,
                                {0, 1, 2}, 3, {2}),
      Catch::Contains("expected 2 classes for f1"));
  // Unlabelled examples (a GLUE test split) and labels outside the classes.
  CHECK_THROWS_WITH(
      trainers::compute_metrics({Metric::kAccuracy}, TaskKind::kClassification,
                                logits, 2, {1, static_cast<float>(kNaN)}),
      Catch::Contains("unlabelled example"));
  CHECK_THROWS_WITH(
      trainers::compute_metrics({Metric::kAccuracy}, TaskKind::kClassification,
                                logits, 2, {1, 2}),
      Catch::Contains("expected class indices in [0, 2)"));
  CHECK_THROWS_WITH(trainers::compute_metrics(
                        {Metric::kPearson}, TaskKind::kRegression, {0.5f, 0.7f},
                        1, {0.4f, static_cast<float>(kNaN)}),
                    Catch::Contains("unlabelled example"));
  CHECK_THROWS_WITH(
      trainers::compute_metrics({Metric::kAccuracy}, TaskKind::kClassification,
                                {}, 2, {}),
      Catch::Contains("expected at least one example"));
}
