#include "ferry/predictor/trainer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "ferry/predictor/xgb_booster.h"

namespace ferry::predictor {

FeatureMatrix build_matrix(const Dataset& data, const FeatureSpec& spec,
                           const ModelNormaliser& norm, int32_t first_day, int32_t last_day,
                           int horizon) {
  struct Ref {
    int32_t day;
    uint32_t device;
    uint32_t sample;
  };
  std::vector<Ref> refs;
  for (std::size_t d = 0; d < data.devices.size(); ++d) {
    const auto& samples = data.devices[d].history.samples;
    for (std::size_t i = 0; i < samples.size(); ++i) {
      if (samples[i].day >= first_day && samples[i].day <= last_day) {
        refs.push_back({samples[i].day, static_cast<uint32_t>(d), static_cast<uint32_t>(i)});
      }
    }
  }
  std::stable_sort(refs.begin(), refs.end(), [](const Ref& a, const Ref& b) { return a.day < b.day; });
  FeatureMatrix m;
  m.cols = feature_count(spec);
  m.x.resize(refs.size() * m.cols);
  for (std::size_t r = 0; r < refs.size(); ++r) {
    const auto& dev = data.devices[refs[r].device];
    const auto& stats = norm.stats_for(dev.history.model, nullptr);
    compute_features(dev.history, refs[r].sample, spec, stats, m.x.data() + r * m.cols);
    const int32_t dtf = dev.failure_day ? *dev.failure_day - refs[r].day : -1;
    m.days_to_failure.push_back(dtf);
    m.label.push_back(dtf >= 0 && dtf < horizon ? 1.0f : 0.0f);
    m.row_day.push_back(refs[r].day);
    m.row_device.push_back(refs[r].device);
    if (r == 0 || refs[r].day != refs[r - 1].day) {
      m.group_sizes.push_back(0);
    }
    ++m.group_sizes.back();
  }
  return m;
}

PResult<TimeSplit> split_by_days(const Dataset& data, int train_days) {
  const int total = data.last_day - data.first_day + 1;
  if (train_days <= 0 || train_days >= total) {
    return perr(PredictorErrc::BadArgument,
                fmt::format("train days must be in 1..{} for {} days of data", total - 1, total));
  }
  TimeSplit s;
  s.train_first = data.first_day;
  s.train_last = data.first_day + train_days - 1;
  s.eval_first = s.train_last + 1;
  s.eval_last = data.last_day;
  return s;
}

Calibration fit_calibration(const std::vector<float>& scores, const std::vector<float>& labels) {
  // Standardise the score first so Newton steps are well conditioned.
  double mean = 0, var = 0;
  const double n = static_cast<double>(scores.size());
  for (float s : scores) {
    mean += s / n;
  }
  for (float s : scores) {
    var += (s - mean) * (s - mean) / n;
  }
  const double sd = var > 0 ? std::sqrt(var) : 1.0;
  double a = 0, b = 0;
  // A small ridge keeps the fit finite when the classes separate perfectly.
  constexpr double kRidge = 1e-3;
  for (int iter = 0; iter < 50; ++iter) {
    double ga = kRidge * a, gb = 0, haa = kRidge, hab = 0, hbb = 1e-9;
    for (std::size_t i = 0; i < scores.size(); ++i) {
      const double z = (scores[i] - mean) / sd;
      const double p = 1.0 / (1.0 + std::exp(-(a * z + b)));
      const double g = p - labels[i], w = std::max(p * (1 - p), 1e-12);
      ga += g * z, gb += g, haa += w * z * z, hab += w * z, hbb += w;
    }
    const double det = haa * hbb - hab * hab;
    if (det <= 0) {
      break;
    }
    const double da = (hbb * ga - hab * gb) / det, db = (haa * gb - hab * ga) / det;
    a -= da, b -= db;
    if (std::fabs(da) + std::fabs(db) < 1e-9) {
      break;
    }
  }
  return Calibration{a / sd, b - a * mean / sd};
}

namespace {

PResult<XgbBooster> train_booster(const FeatureMatrix& m, const TrainParams& p) {
  auto dm = XgbMatrix::create(m.x.data(), m.rows(), m.cols);
  if (!dm) {
    return fail(dm.error());
  }
  if (auto ok = dm->set_labels(m.label); !ok) {
    return fail(ok.error());
  }
  if (p.objective.starts_with("rank:")) {
    if (auto ok = dm->set_groups(m.group_sizes); !ok) {
      return fail(ok.error());
    }
  }
  auto booster = XgbBooster::create(*dm);
  if (!booster) {
    return fail(booster.error());
  }
  std::vector<std::pair<std::string, std::string>> params = {
      {"objective", p.objective},
      {"tree_method", "hist"},
      {"max_depth", std::to_string(p.max_depth)},
      {"eta", fmt::format("{}", p.eta)},
      {"min_child_weight", fmt::format("{}", p.min_child_weight)},
      {"nthread", std::to_string(p.nthread)},
      {"seed", std::to_string(p.seed)},
      {"verbosity", "0"},
  };
  params.insert(params.end(), p.extra.begin(), p.extra.end());
  for (const auto& [k, v] : params) {
    if (auto ok = booster->set_param(k, v); !ok) {
      return fail(ok.error());
    }
  }
  for (int i = 0; i < p.rounds; ++i) {
    if (auto ok = booster->update(i, *dm); !ok) {
      return fail(ok.error());
    }
  }
  return booster;
}

}  // namespace

PResult<RiskModel> train_risk_model(const Dataset& data, const TimeSplit& split,
                                    const TrainParams& params) {
  if (params.horizon <= 0 || params.rounds <= 0 || params.windows.empty()) {
    return perr(PredictorErrc::BadArgument, "horizon, rounds and windows must be positive");
  }
  const int32_t last_labelled = split.train_last - params.horizon + 1;
  if (last_labelled < split.train_first) {
    return perr(PredictorErrc::BadArgument,
                fmt::format("training range shorter than the {}-step horizon", params.horizon));
  }
  FeatureSpec spec{data.schema, params.windows};
  auto norm = ModelNormaliser::fit(data, split.train_first, split.train_last);
  const FeatureMatrix m =
      build_matrix(data, spec, norm, split.train_first, last_labelled, params.horizon);
  const auto positives = static_cast<std::size_t>(std::count(m.label.begin(), m.label.end(), 1.0f));
  if (m.rows() == 0 || positives == 0) {
    return perr(PredictorErrc::BadArgument,
                fmt::format("training range has {} rows and {} positives; need both > 0", m.rows(),
                            positives));
  }
  auto booster = train_booster(m, params);
  if (!booster) {
    return fail(booster.error());
  }
  auto xgb_json = booster->save_json();
  if (!xgb_json) {
    return fail(xgb_json.error());
  }
  auto trees = TreeEnsemble::from_xgboost_json(nlohmann::json::parse(*xgb_json), m.cols);
  if (!trees) {
    return fail(trees.error());
  }
  std::vector<float> scores(m.rows());
  for (std::size_t r = 0; r < m.rows(); ++r) {
    scores[r] = trees->predict(m.row(r));
  }
  TrainingInfo info{params.objective, params.horizon, params.rounds, params.max_depth, params.eta,
                    split.train_first, split.train_last, m.rows(), positives};
  return RiskModel(spec, std::move(norm), fit_calibration(scores, m.label), info,
                   std::move(*xgb_json), std::move(*trees));
}

}  // namespace ferry::predictor
