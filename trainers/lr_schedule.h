#pragma once
// Learning-rate schedules with warmup, as transformers' get_scheduler
// defines them (factor of the peak learning rate at optimizer step t).

#include <cstdint>
#include <string>

namespace peftcpp::trainers {

/// transformers' SchedulerType names.
enum class LrSchedule {
  kLinear,              ///< "linear": warmup, then linear decay to 0
  kCosine,              ///< "cosine": warmup, then half a cosine to 0
  kConstant,            ///< "constant"
  kConstantWithWarmup,  ///< "constant_with_warmup"
};

/// "linear", "cosine", "constant", "constant_with_warmup";
/// std::invalid_argument listing them otherwise.
LrSchedule parse_lr_schedule(const std::string& name);
/// The inverse of parse_lr_schedule.
std::string lr_schedule_name(LrSchedule schedule);

/// Warmup steps from an absolute count (wins when > 0) or a ratio of
/// the total, rounded up as transformers' get_warmup_steps does:
/// ceil(total_steps * warmup_ratio) in double. std::invalid_argument for a
/// negative count or total, or a ratio outside [0, 1].
int64_t warmup_steps_for(int64_t warmup_steps, double warmup_ratio,
                         int64_t total_steps);

/// Multiplier of the peak learning rate before optimizer step `step`
/// (0-based), e.g. linear: step / warmup during warmup, then
/// max(0, (total - step) / max(1, total - warmup)). After the last step the
/// formulas go on as transformers' do (cosine rises again). Throws
/// std::invalid_argument for a negative step or warmup.
double lr_factor(LrSchedule schedule, int64_t step, int64_t warmup_steps,
                 int64_t total_steps);

}  // namespace peftcpp::trainers
