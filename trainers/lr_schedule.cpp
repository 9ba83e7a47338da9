#include "trainers/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "common/error.h"

namespace peftcpp::trainers {

namespace {

constexpr double kPi = 3.14159265358979323846;

// transformers' get_cosine_schedule_with_warmup default: half a cosine
// period, from 1 at the end of warmup down to 0 at the last step.
constexpr double kCosineCycles = 0.5;

// Linear ramp 0 -> 1 over the warmup steps, as every transformers schedule
// with warmup computes it: step / max(1, warmup).
double warmup_factor(int64_t step, int64_t warmup_steps) {
  return static_cast<double>(step) /
         static_cast<double>(std::max<int64_t>(1, warmup_steps));
}

}  // namespace

LrSchedule parse_lr_schedule(const std::string& name) {
  if (name == "linear")
    return LrSchedule::kLinear;
  if (name == "cosine")
    return LrSchedule::kCosine;
  if (name == "constant")
    return LrSchedule::kConstant;
  if (name == "constant_with_warmup")
    return LrSchedule::kConstantWithWarmup;
  throw std::invalid_argument(error_message(
      "lr_scheduler_type",
      "one of linear, cosine, constant, constant_with_warmup",
      "\"" + name + "\"", "the names are transformers' SchedulerType values"));
}

std::string lr_schedule_name(LrSchedule schedule) {
  switch (schedule) {
    case LrSchedule::kLinear:
      return "linear";
    case LrSchedule::kCosine:
      return "cosine";
    case LrSchedule::kConstant:
      return "constant";
    case LrSchedule::kConstantWithWarmup:
      return "constant_with_warmup";
  }
  throw std::invalid_argument(
      error_message("lr_schedule_name", "a LrSchedule value",
                    std::to_string(static_cast<int>(schedule))));
}

int64_t warmup_steps_for(int64_t warmup_steps, double warmup_ratio,
                         int64_t total_steps) {
  if (warmup_steps < 0)
    throw std::invalid_argument(error_message("warmup_steps", "a count >= 0",
                                              std::to_string(warmup_steps)));
  if (!(warmup_ratio >= 0.0 && warmup_ratio <= 1.0))
    throw std::invalid_argument(error_message(
        "warmup_ratio", "a fraction in [0, 1]", std::to_string(warmup_ratio),
        "warmup_ratio is a share of the total optimizer steps"));
  if (total_steps < 0)
    throw std::invalid_argument(error_message(
        "warmup_steps_for", "total_steps >= 0", std::to_string(total_steps)));
  if (warmup_steps > 0)
    return warmup_steps;
  // math.ceil(num_training_steps * ratio) in double, as transformers does:
  // its rounding is kept on purpose (100 * 0.07 = 7.000000000000001 -> 8) so
  // that the same settings give the same schedule.
  return static_cast<int64_t>(
      std::ceil(static_cast<double>(total_steps) * warmup_ratio));
}

double lr_factor(LrSchedule schedule, int64_t step, int64_t warmup_steps,
                 int64_t total_steps) {
  if (step < 0)
    throw std::invalid_argument(error_message(
        "lr_factor", "an optimizer step >= 0 (0-based)", std::to_string(step)));
  if (warmup_steps < 0)
    throw std::invalid_argument(error_message("lr_factor", "warmup_steps >= 0",
                                              std::to_string(warmup_steps)));
  switch (schedule) {
    case LrSchedule::kConstant:
      return 1.0;
    case LrSchedule::kConstantWithWarmup:
      return step < warmup_steps ? warmup_factor(step, warmup_steps) : 1.0;
    case LrSchedule::kLinear: {
      if (step < warmup_steps)
        return warmup_factor(step, warmup_steps);
      // (total - t) / max(1, total - warmup), floored at 0
      const double left = static_cast<double>(total_steps - step);
      const double span =
          static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
      return std::max(0.0, left / span);
    }
    case LrSchedule::kCosine: {
      if (step < warmup_steps)
        return warmup_factor(step, warmup_steps);
      // progress p = (t - warmup) / max(1, total - warmup);
      // factor = max(0, (1 + cos(pi * cycles * 2 * p)) / 2)
      const double progress =
          static_cast<double>(step - warmup_steps) /
          static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
      return std::max(
          0.0, 0.5 * (1.0 + std::cos(kPi * kCosineCycles * 2.0 * progress)));
    }
  }
  throw std::invalid_argument(
      error_message("lr_factor", "a LrSchedule value",
                    std::to_string(static_cast<int>(schedule))));
}

}  // namespace peftcpp::trainers
