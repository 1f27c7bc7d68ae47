// The whole evaluation as `ferry model eval` runs it: time split, train the ranker and the
// binary-classifier baseline on the same features, score the held-out days, add the rule
// baseline (SMART 5/197 for disks, a frequency threshold for CPUs), compute every metric,
// and draw the precision-recall / lead-time SVG.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ferry/predictor/evaluate.h"
#include "ferry/predictor/optimiser.h"
#include "ferry/predictor/risk_model.h"
#include "ferry/predictor/trainer.h"

namespace ferry::predictor {

struct EvalConfig {
  int train_days = 20;
  TrainParams params;
  EvacuationCosts costs;
  EvalOptions eval;
  bool with_classifier = true;
};

struct EvalReport {
  TimeSplit split;
  std::size_t eval_rows = 0;
  std::size_t eval_positives = 0;
  double ranker_train_seconds = 0.0;
  double classifier_train_seconds = 0.0;
  std::vector<MethodMetrics> methods;  // ranker, classifier, rule
  std::optional<RiskModel> ranker;
};

/// Runs the full evaluation on `data`.
PResult<EvalReport> run_evaluation(const Dataset& data, const EvalConfig& config);

/// Scores every row of `m` with the rule baseline of `spec`'s schema, and flags per the rule.
std::vector<float> rule_scores(const FeatureMatrix& m, const FeatureSpec& spec);
/// Rule flags: SMART raw 5 or 197 > 0 for disks; min core frequency ratio < 0.75 or a new
/// throttle event for CPUs.
std::vector<uint8_t> rule_flags(const FeatureMatrix& m, const FeatureSpec& spec);

/// The histories of devices reporting on `day`, cut at `day` (what a live scorer sees).
std::vector<DeviceTelemetryHistory> histories_as_of(const Dataset& data, int32_t day);

/// A two-panel SVG: precision-recall (pooled) and failures caught / mean lead time
/// against flags per day, one line per method.
std::string render_svg(const EvalReport& report, const std::string& title);

}  // namespace ferry::predictor
