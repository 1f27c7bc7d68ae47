#include "ferry/predictor/risk_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace ferry::predictor {

using nlohmann::json;

double Calibration::probability(double score) const {
  return 1.0 / (1.0 + std::exp(-(slope * score + intercept)));
}

RiskModel::RiskModel(FeatureSpec spec, ModelNormaliser norm, Calibration calib, TrainingInfo info,
                     std::string xgboost_json, TreeEnsemble trees)
    : spec_(std::move(spec)),
      norm_(std::move(norm)),
      calib_(calib),
      info_(std::move(info)),
      xgboost_json_(std::move(xgboost_json)),
      trees_(std::move(trees)) {}

namespace {

DeviceKind kind_from(const std::string& s, bool* ok) {
  *ok = s == "disk" || s == "cpu";
  return s == "cpu" ? DeviceKind::Cpu : DeviceKind::Disk;
}

json info_json(const TrainingInfo& i) {
  return {{"objective", i.objective},        {"horizon", i.horizon},
          {"rounds", i.rounds},              {"max_depth", i.max_depth},
          {"eta", i.eta},                    {"train_first_day", format_iso_date(i.train_first_day)},
          {"train_last_day", format_iso_date(i.train_last_day)},
          {"train_rows", i.train_rows},      {"train_positives", i.train_positives}};
}

// Informational fields: anything missing or mistyped reads as the default, never UB.
int64_t int_or(const json& j, const char* key, int64_t def) {
  return j.contains(key) && j[key].is_number_integer() ? j[key].get<int64_t>() : def;
}

TrainingInfo info_from(const json& j) {
  TrainingInfo i;
  if (!j.is_object()) {
    return i;
  }
  auto clamp_int = [](int64_t v) { return static_cast<int>(std::clamp<int64_t>(v, -1000000, 1000000)); };
  i.objective = j.contains("objective") && j["objective"].is_string() ? j["objective"].get<std::string>() : "";
  i.horizon = clamp_int(int_or(j, "horizon", 7));
  i.rounds = clamp_int(int_or(j, "rounds", 0));
  i.max_depth = clamp_int(int_or(j, "max_depth", 0));
  i.eta = j.contains("eta") && j["eta"].is_number() ? j["eta"].get<double>() : 0.0;
  auto day = [&](const char* key) {
    return j.contains(key) && j[key].is_string() ? parse_iso_date(j[key].get<std::string>()).value_or(0) : 0;
  };
  i.train_first_day = day("train_first_day");
  i.train_last_day = day("train_last_day");
  i.train_rows = static_cast<std::size_t>(std::max<int64_t>(0, int_or(j, "train_rows", 0)));
  i.train_positives = static_cast<std::size_t>(std::max<int64_t>(0, int_or(j, "train_positives", 0)));
  return i;
}

PResult<RiskModel> parse_model(const json& doc) {
  if (!doc.is_object() || doc.value("format", "") != "ferry-risk-model") {
    return perr(PredictorErrc::CorruptModel, "not a ferry-risk-model file");
  }
  const auto& version = doc.value("version", nlohmann::json());
  if (!version.is_number_integer() || version.get<int64_t>() != kRiskModelFormatVersion) {
    return perr(PredictorErrc::CorruptModel, fmt::format("format version {} (this build reads {})",
                                                         version.dump(), kRiskModelFormatVersion));
  }
  FeatureSpec spec;
  bool kind_ok = false;
  spec.schema.kind = kind_from(doc.at("schema").at("kind").get<std::string>(), &kind_ok);
  if (!kind_ok) {
    return perr(PredictorErrc::CorruptModel, "schema.kind must be 'disk' or 'cpu'");
  }
  spec.schema.channels = doc.at("schema").at("channels").get<std::vector<std::string>>();
  spec.windows.clear();
  for (const auto& w : doc.at("windows")) {
    // Integers only, checked before narrowing (a float out of int range would be UB).
    if (!w.is_number_integer() || w.get<int64_t>() <= 0 || w.get<int64_t>() > 366) {
      return perr(PredictorErrc::CorruptModel, "windows must be integers in 1..366");
    }
    spec.windows.push_back(static_cast<int>(w.get<int64_t>()));
  }
  if (spec.schema.channels.empty() || spec.windows.empty()) {
    return perr(PredictorErrc::CorruptModel, "empty channel list or window list");
  }
  const auto names = doc.at("feature_names").get<std::vector<std::string>>();
  if (names != feature_names(spec)) {
    return perr(PredictorErrc::WrongFeatureSet,
                fmt::format("model lists {} features that differ from the {} this build "
                            "computes for its schema",
                            names.size(), feature_count(spec)));
  }
  auto norm = ModelNormaliser::from_json(doc.at("normaliser"), spec.schema.channels.size());
  if (!norm) {
    return fail(norm.error());
  }
  Calibration calib{doc.at("calibration").at("slope").get<double>(),
                    doc.at("calibration").at("intercept").get<double>()};
  if (!std::isfinite(calib.slope) || !std::isfinite(calib.intercept)) {
    return perr(PredictorErrc::CorruptModel, "non-finite calibration");
  }
  const json& xgb = doc.at("xgboost");
  auto trees = TreeEnsemble::from_xgboost_json(xgb, feature_count(spec));
  if (!trees) {
    return fail(trees.error());
  }
  return RiskModel(std::move(spec), std::move(*norm), calib, info_from(doc.value("training", json::object())),
                   xgb.dump(), std::move(*trees));
}

}  // namespace

PResult<RiskModel> RiskModel::from_json_text(std::string_view text) {
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return perr(PredictorErrc::CorruptModel, "model file is not valid JSON");
  }
  try {
    return parse_model(doc);
  } catch (const json::exception& e) {
    return perr(PredictorErrc::CorruptModel, fmt::format("missing or mistyped field: {}", e.what()));
  }
}

PResult<RiskModel> RiskModel::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return perr(PredictorErrc::OpenData, fmt::format("cannot open model {}", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto m = from_json_text(ss.str());
  if (!m) {
    auto e = m.error();
    e.detail = fmt::format("{}: {}", path, e.detail);
    return fail(e);
  }
  return m;
}

std::string RiskModel::to_json_text() const {
  json doc;
  doc["format"] = "ferry-risk-model";
  doc["version"] = kRiskModelFormatVersion;
  doc["schema"] = {{"kind", device_kind_name(spec_.schema.kind)}, {"channels", spec_.schema.channels}};
  doc["windows"] = spec_.windows;
  doc["feature_names"] = feature_names(spec_);
  doc["normaliser"] = norm_.to_json();
  doc["calibration"] = {{"slope", calib_.slope}, {"intercept", calib_.intercept}};
  doc["training"] = info_json(info_);
  doc["xgboost"] = json::parse(xgboost_json_);
  return doc.dump();
}

PResult<void> RiskModel::save(const std::string& path) const {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << to_json_text();
  out.close();
  if (!out) {
    return perr(PredictorErrc::Io, fmt::format("cannot write {}", path));
  }
  return {};
}

std::vector<FeatureContribution> RiskModel::explain_row(const float* features,
                                                        std::size_t top_k) const {
  const std::size_t nf = feature_count(spec_);
  std::vector<float> contrib(nf + 1, 0.0f);
  trees_.contributions(features, contrib.data());
  const auto names = feature_names(spec_);
  std::vector<FeatureContribution> all;
  for (std::size_t f = 0; f < nf; ++f) {
    if (contrib[f] > 0.0f) {
      all.push_back({names[f], features[f], contrib[f]});
    }
  }
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a.contribution > b.contribution; });
  if (all.size() > top_k) {
    all.resize(top_k);
  }
  return all;
}

PResult<std::vector<RiskScore>> RiskModel::score(
    const std::vector<DeviceTelemetryHistory>& histories, std::size_t top_k) const {
  std::vector<RiskScore> out;
  out.reserve(histories.size());
  std::vector<float> row(feature_count(spec_));
  for (const auto& h : histories) {
    if (auto ok = validate_history(h, spec_.schema); !ok) {
      return fail(ok.error());
    }
    RiskScore s{h.device_id, h.host, h.model};
    const auto& stats = norm_.stats_for(h.model, &s.known_model);
    compute_features(h, h.samples.size() - 1, spec_, stats, row.data());
    s.score = score_row(row.data());
    s.probability = calib_.probability(s.score);
    if (top_k > 0) {
      s.top_features = explain_row(row.data(), top_k);
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace ferry::predictor
