// Honest metrics on held-out days: for each method (model or baseline) given its score and
// its "evacuate" decision for every evaluation row, compute precision/recall at the chosen
// N, recall at fixed false-evacuation rates, failures caught, mean lead time and NDCG, plus
// the curves the SVG report draws. Ties in a score are handled as one block (never broken
// in a method's favour).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ferry/predictor/optimiser.h"
#include "ferry/predictor/risk_model.h"
#include "ferry/predictor/trainer.h"

namespace ferry::predictor {

struct EvalOptions {
  int horizon = 7;
  std::vector<double> false_evacuation_rates{1e-4, 1e-3};  // false flags / drive-days
  std::vector<std::size_t> lead_curve_n{1, 2, 5, 10, 20, 50, 100, 200};  // flags per day
};

struct CurvePoint {
  double x = 0.0;
  double y = 0.0;
};

struct MethodMetrics {
  std::string name;
  double flags_per_day = 0.0;   // mean chosen N
  double precision = 0.0;       // flagged drive-days that fail within the horizon
  double recall = 0.0;          // positive drive-days that were flagged
  std::size_t failures = 0;     // devices failing on an evaluation day
  std::size_t caught = 0;       // ... flagged at least once within the horizon before it
  double mean_lead_days = 0.0;  // over caught failures: failure day - first flag day
  std::vector<double> recall_at_fer;     // one per EvalOptions::false_evacuation_rates
  std::vector<double> failures_at_fer;   // failure-level recall at the same thresholds
  double ndcg = 0.0;            // mean per-day NDCG over days with a positive
  double ndcg_at_10 = 0.0;
  std::vector<CurvePoint> pr_curve;     // (recall, precision), pooled over days
  std::vector<CurvePoint> caught_curve; // (flags per day, failure recall)
  std::vector<CurvePoint> lead_curve;   // (flags per day, mean lead days)
};

/// Metrics of one method on `m` (evaluation rows) given per-row scores and flags.
MethodMetrics evaluate_method(const std::string& name, const FeatureMatrix& m,
                              const std::vector<float>& scores,
                              const std::vector<uint8_t>& flagged, const EvalOptions& options);

/// Flags rows day by day with choose_evacuations() from per-row probabilities (one device
/// per host, as Backblaze does not say which pod a drive sits in).
std::vector<uint8_t> flag_by_cost(const FeatureMatrix& m, const std::vector<double>& probability,
                                  const EvacuationCosts& costs);

/// The classic SMART rule as a score: raw 5 + raw 197 (reallocated + pending sectors);
/// the rule flags a drive when this is > 0. Missing values count as 0.
std::vector<float> smart_rule_scores(const FeatureMatrix& m, const FeatureSpec& spec);

/// Markdown table of all methods' metrics.
std::string format_metrics_table(const std::vector<MethodMetrics>& methods,
                                  const EvalOptions& options);

}  // namespace ferry::predictor
