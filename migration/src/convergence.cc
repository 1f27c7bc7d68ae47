#include "ferry/migration/convergence.h"

#include <fmt/format.h>

#include <algorithm>

namespace ferry::migration {

const char* action_name(ConvergenceAction action) {
  switch (action) {
    case ConvergenceAction::Continue:
      return "continue";
    case ConvergenceAction::SwitchOver:
      return "switch-over";
    case ConvergenceAction::Invalid:
      break;
  }
  return "invalid";
}

double data_bandwidth_bytes_per_s(uint64_t data_bytes, uint64_t duration_ns,
                                  double all_bytes_per_s) {
  constexpr uint64_t kMinDataBytes = 1 << 20;
  if (data_bytes < kMinDataBytes || duration_ns == 0) {
    return all_bytes_per_s;
  }
  return static_cast<double>(data_bytes) * 1e9 / static_cast<double>(duration_ns);
}

ConvergenceDecision DefaultConvergencePolicy::decide(const ConvergenceInput& in) {
  constexpr size_t kTop = std::size(kLadder) - 1;
  ConvergenceDecision d;
  d.iteration = in.iteration;
  const double budget_ms = std::chrono::duration<double, std::milli>(in.downtime_budget).count();
  const bool urgent = in.risk_score.has_value() && *in.risk_score >= 0.8;
  const uint32_t max_rounds =
      urgent ? std::max<uint32_t>(2, config_.max_rounds / 2) : config_.max_rounds;
  if (in.bandwidth_bytes_per_s > 0) {
    d.predicted_downtime_ms =
        1000.0 * static_cast<double>(in.remaining_bytes) / in.bandwidth_bytes_per_s;
  } else {
    d.predicted_downtime_ms = in.remaining_bytes == 0 ? 0 : 1e12;
  }
  const bool shrinking = previous_remaining_ == 0 ||
                         static_cast<double>(in.remaining_bytes) <
                             config_.progress_ratio * static_cast<double>(previous_remaining_);
  previous_remaining_ = std::max<uint64_t>(in.remaining_bytes, 1);

  if (d.predicted_downtime_ms <= budget_ms) {
    d.action = ConvergenceAction::SwitchOver;
    d.reason =
        fmt::format("remaining {} bytes fit the {:.1f} ms budget", in.remaining_bytes, budget_ms);
  } else if (in.iteration >= max_rounds) {
    d.action = ConvergenceAction::SwitchOver;
    d.reason = fmt::format("round limit {} reached; forcing switch-over", max_rounds);
  } else if (step_ == kTop && rounds_at_max_ >= config_.rounds_at_max_throttle) {
    d.action = ConvergenceAction::SwitchOver;
    d.reason = fmt::format("not converging at {}% throttle after {} rounds; forcing switch-over",
                           kLadder[kTop], rounds_at_max_);
  } else {
    d.action = ConvergenceAction::Continue;
    // The first round copies everything, so its rate says nothing about convergence.
    const bool losing =
        in.iteration >= 2 && (!shrinking || in.dirty_rate_bytes_per_s >= in.bandwidth_bytes_per_s);
    if ((losing || (urgent && in.iteration >= 1)) && step_ < kTop) {
      step_ = std::min(kTop, step_ + (urgent ? 2 : 1));
      d.reason =
          fmt::format("{}: dirty rate {:.1f} MiB/s vs link {:.1f} MiB/s; throttle up",
                      urgent ? "high failure risk" : "not converging",
                      in.dirty_rate_bytes_per_s / 1048576.0, in.bandwidth_bytes_per_s / 1048576.0);
    } else {
      d.reason = fmt::format("predicted downtime {:.1f} ms > budget {:.1f} ms",
                             d.predicted_downtime_ms, budget_ms);
    }
    if (step_ == kTop) {
      ++rounds_at_max_;
    }
  }
  d.throttle_percent = kLadder[step_];
  return d;
}

}  // namespace ferry::migration
