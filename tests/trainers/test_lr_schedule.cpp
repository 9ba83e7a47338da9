// Learning-rate schedules against transformers' get_scheduler, step by step
// (tests/fixtures/make_trainer_refs.py, schedules.json), and the warmup
// count against TrainingArguments.get_warmup_steps.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>

#include "tests/test_paths.h"
#include "trainers/lr_schedule.h"

using nlohmann::json;
using peftcpp::trainers::LrSchedule;
namespace trainers = peftcpp::trainers;

namespace {

json load_schedules() {
  const auto path =
      peftcpp::testing::fixture_dir() / "trainer_refs" / "schedules.json";
  std::ifstream in(path);
  INFO("reference file " << path.string()
                         << " (written by make_trainer_refs.py)");
  REQUIRE(in.good());
  return json::parse(in);
}

}  // namespace

TEST_CASE(
    "every schedule gives transformers' factor at every step, warmup from a "
    "count or a ratio",
    "[trainers][schedule]") {
  const json ref = load_schedules();
  double max_dev = 0.0;
  size_t values = 0;
  for (const json& c : ref) {
    const std::string name = c.at("schedule");
    const int64_t warmup_steps = c.at("warmup_steps");
    const double ratio = c.at("warmup_ratio");
    const int64_t total = c.at("total_steps");
    INFO(name << " warmup_steps=" << warmup_steps << " warmup_ratio=" << ratio
              << " total=" << total);
    const int64_t warmup =
        trainers::warmup_steps_for(warmup_steps, ratio, total);
    CHECK(warmup == c.at("resolved_warmup").get<int64_t>());
    const LrSchedule schedule = trainers::parse_lr_schedule(name);
    CHECK(trainers::lr_schedule_name(schedule) == name);
    const auto factors = c.at("factors").get<std::vector<double>>();
    for (size_t step = 0; step < factors.size(); ++step) {
      INFO("step " << step);
      const double got = trainers::lr_factor(
          schedule, static_cast<int64_t>(step), warmup, total);
      CHECK(std::abs(got - factors[step]) <= 1e-15);
      max_dev = std::max(max_dev, std::abs(got - factors[step]));
      ++values;
    }
  }
  CHECK(values > 500);
  std::printf("schedules: %zu factors, max |d| vs transformers %.3g\n", values,
              max_dev);
}

TEST_CASE("warmup from a ratio rounds up as transformers does",
          "[trainers][schedule]") {
  // ceil in double: 100 * 0.07 = 7.000000000000001 -> 8 (as math.ceil).
  CHECK(trainers::warmup_steps_for(0, 0.07, 100) == 8);
  CHECK(trainers::warmup_steps_for(0, 0.1, 30) == 3);
  CHECK(trainers::warmup_steps_for(0, 0.25, 8) == 2);
  CHECK(trainers::warmup_steps_for(0, 0.0, 100) == 0);
  // The whole run (transformers 4's warmup_ratio=1.0; transformers 5 would
  // read warmup_steps=1.0 as one step, so this is checked by formula).
  CHECK(trainers::warmup_steps_for(0, 1.0, 17) == 17);
  // An explicit count wins over the ratio.
  CHECK(trainers::warmup_steps_for(3, 0.5, 100) == 3);
}

TEST_CASE("bad schedule settings are refused with the accepted values",
          "[trainers][schedule]") {
  CHECK_THROWS_WITH(
      trainers::parse_lr_schedule("cosine_with_restarts"),
      Catch::Contains("[lr_scheduler_type] expected one of linear, cosine, "
                      "constant, constant_with_warmup, got "
                      "\"cosine_with_restarts\""));
  CHECK_THROWS_AS(trainers::warmup_steps_for(-1, 0.0, 10),
                  std::invalid_argument);
  CHECK_THROWS_WITH(trainers::warmup_steps_for(0, 1.5, 10),
                    Catch::Contains("[warmup_ratio] expected a fraction in "
                                    "[0, 1]"));
  CHECK_THROWS_AS(trainers::warmup_steps_for(0, std::nan(""), 10),
                  std::invalid_argument);
  CHECK_THROWS_AS(trainers::warmup_steps_for(0, 0.1, -5),
                  std::invalid_argument);
  CHECK_THROWS_WITH(
      trainers::lr_factor(LrSchedule::kLinear, -1, 0, 10),
      Catch::Contains("[lr_factor] expected an optimizer step >= 0"));
}
