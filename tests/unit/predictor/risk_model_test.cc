// RiskModel trained on a real Backblaze subset: in-process scores equal XGBoost's, files
// round-trip, the time split holds, and every bad model file / bad telemetry case gives a
// clear error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "ferry/predictor/cpu_synth.h"
#include "ferry/predictor/report.h"
#include "ferry/predictor/xgb_booster.h"
#include "test_util.h"

namespace ferry::predictor {
namespace {

using test::small_backblaze;
using test::small_ranker;
using test::small_split;

FeatureMatrix eval_matrix(const RiskModel& model) {
  const auto s = small_split();
  auto norm = ModelNormaliser::fit(small_backblaze(), s.train_first, s.train_last);
  return build_matrix(small_backblaze(), model.spec(), norm, s.eval_first, s.eval_last,
                      model.info().horizon);
}

TEST(RiskModel, InProcessScoresMatchXgboostOnRealData) {
  const auto& model = small_ranker();
  const auto m = eval_matrix(model);
  ASSERT_GT(m.rows(), 1000u);
  auto booster = XgbBooster::from_json(model.xgboost_json());
  ASSERT_TRUE(booster);
  auto dm = XgbMatrix::create(m.x.data(), m.rows(), m.cols);
  ASSERT_TRUE(dm);
  auto ref = booster->predict(*dm);
  ASSERT_TRUE(ref);
  double worst = 0;
  for (std::size_t r = 0; r < m.rows(); ++r) {
    worst = std::max(worst, std::fabs(double(model.score_row(m.row(r))) - (*ref)[r]));
  }
  EXPECT_LT(worst, 1e-5);
}

TEST(RiskModel, TrainingRespectsTheTimeSplit) {
  const auto& model = small_ranker();
  const auto s = small_split();
  const auto& info = model.info();
  EXPECT_EQ(info.train_first_day, s.train_first);
  EXPECT_EQ(info.train_last_day, s.train_last);
  // Only rows whose 7-day label window ends inside the training range are used.
  auto norm = ModelNormaliser::fit(small_backblaze(), s.train_first, s.train_last);
  const auto m = build_matrix(small_backblaze(), model.spec(), norm, s.train_first,
                              s.train_last - info.horizon + 1, info.horizon);
  EXPECT_EQ(info.train_rows, m.rows());
  EXPECT_GT(info.train_positives, 0u);
  EXPECT_EQ(m.group_sizes.size(), static_cast<std::size_t>(s.train_last - info.horizon + 2 - s.train_first));
  for (std::size_t r = 0; r < m.rows(); ++r) {
    ASSERT_LE(m.row_day[r] + info.horizon - 1, s.train_last);
  }
}

TEST(RiskModel, RanksHeldOutFailuresAboveHealthyDrives) {
  const auto& model = small_ranker();
  const auto m = eval_matrix(model);
  std::vector<float> scores(m.rows());
  for (std::size_t r = 0; r < m.rows(); ++r) {
    scores[r] = model.score_row(m.row(r));
  }
  // Mean percentile rank of positive rows among all rows: 0.5 would be chance.
  std::vector<float> sorted = scores;
  std::sort(sorted.begin(), sorted.end());
  double sum = 0, n = 0;
  for (std::size_t r = 0; r < m.rows(); ++r) {
    if (m.label[r] > 0) {
      sum += double(std::lower_bound(sorted.begin(), sorted.end(), scores[r]) - sorted.begin()) / sorted.size();
      n += 1;
    }
  }
  ASSERT_GT(n, 0);
  EXPECT_GT(sum / n, 0.7);
}

TEST(RiskModel, SaveLoadRoundTripGivesIdenticalScores) {
  const auto& model = small_ranker();
  const auto path = test::scratch_dir("model") / "m.json";
  ASSERT_TRUE(model.save(path));
  auto back = RiskModel::load(path);
  ASSERT_TRUE(back) << back.error().message();
  const auto histories = histories_as_of(small_backblaze(), small_backblaze().last_day);
  auto a = model.score(histories);
  auto b = back->score(histories);
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->size(), b->size());
  for (std::size_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ((*a)[i].score, (*b)[i].score);
    EXPECT_EQ((*a)[i].probability, (*b)[i].probability);
  }
  EXPECT_EQ(back->info().rounds, 20);
}

TEST(RiskModel, ScoreOfHistoriesEqualsMatrixRowsAndExplains) {
  const auto& model = small_ranker();
  const auto& data = small_backblaze();
  const auto histories = histories_as_of(data, data.last_day);
  auto scores = model.score(histories, 3);
  ASSERT_TRUE(scores);
  auto norm = ModelNormaliser::fit(data, small_split().train_first, small_split().train_last);
  const auto m = build_matrix(data, model.spec(), norm, data.last_day, data.last_day, 7);
  ASSERT_EQ(m.rows(), scores->size());
  for (std::size_t r = 0; r < m.rows(); ++r) {
    EXPECT_FLOAT_EQ((*scores)[r].score, model.score_row(m.row(r)));
    EXPECT_EQ((*scores)[r].device_id, data.devices[m.row_device[r]].history.device_id);
  }
  const auto top = *std::max_element(scores->begin(), scores->end(),
                                     [](auto& a, auto& b) { return a.score < b.score; });
  ASSERT_FALSE(top.top_features.empty());
  EXPECT_GT(top.top_features[0].contribution, 0.0f);
  EXPECT_GT(top.probability, 0.0);
  EXPECT_LT(top.probability, 1.0);
}

TEST(RiskModel, BadTelemetryIsRefused) {
  const auto& model = small_ranker();
  auto empty = model.score({});
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
  DeviceTelemetryHistory h{"d", "h", "ST3000DM001", {{0, {1, 0, 100, 30, 0}}}};
  EXPECT_TRUE(model.score({h}));
  auto unknown = h;
  unknown.model = "Nobody's drive";
  auto u = model.score({unknown});
  ASSERT_TRUE(u);
  EXPECT_FALSE((*u)[0].known_model);
  EXPECT_TRUE(std::isfinite((*u)[0].score));
  auto nan = h;
  nan.samples[0].values = {kMissing, kMissing, kMissing, kMissing, kMissing};
  EXPECT_TRUE(model.score({nan}));
  auto inf = h;
  inf.samples[0].values[1] = INFINITY;
  EXPECT_EQ(model.score({inf}).error().errc, PredictorErrc::NonFinite);
  auto none = h;
  none.samples.clear();
  EXPECT_EQ(model.score({none}).error().errc, PredictorErrc::EmptyHistory);
  // A CPU history given to the disk model.
  CpuSynthConfig c;
  c.hosts = 2;
  c.steps = 3;
  const auto cpu = generate_cpu_telemetry(c);
  EXPECT_EQ(model.score({cpu.devices[0].history}).error().errc, PredictorErrc::WrongFeatureSet);
  auto cpu_hist = cpu.devices[0].history;
  cpu_hist.kind = DeviceKind::Disk;
  cpu_hist.samples[0].values.pop_back();
  EXPECT_EQ(model.score({cpu_hist}).error().errc, PredictorErrc::WrongFeatureSet);
}

TEST(RiskModel, CorruptOrForeignModelFilesAreRefused) {
  const std::string good = small_ranker().to_json_text();
  ASSERT_TRUE(RiskModel::from_json_text(good));
  auto expect = [](const std::string& text, PredictorErrc errc) {
    auto m = RiskModel::from_json_text(text);
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().errc, errc) << m.error().message();
  };
  expect("", PredictorErrc::CorruptModel);
  expect("garbage", PredictorErrc::CorruptModel);
  expect(good.substr(0, good.size() / 2), PredictorErrc::CorruptModel);
  expect("{\"format\": \"something else\"}", PredictorErrc::CorruptModel);
  auto edit = [&](auto fn) {
    auto j = nlohmann::json::parse(good);
    fn(j);
    return j.dump();
  };
  using J = nlohmann::json;
  expect(edit([](J& j) { j["version"] = 99; }), PredictorErrc::CorruptModel);
  expect(edit([](J& j) { j.erase("xgboost"); }), PredictorErrc::CorruptModel);
  expect(edit([](J& j) { j["calibration"]["slope"] = "steep"; }), PredictorErrc::CorruptModel);
  expect(edit([](J& j) { j["normaliser"]["global"] = J::array(); }), PredictorErrc::CorruptModel);
  // Another feature set: names that this build does not compute, or trees sized for it.
  expect(edit([](J& j) { j["feature_names"][3] = "smart_5_raw.d30"; }), PredictorErrc::WrongFeatureSet);
  expect(edit([](J& j) { j["windows"] = {1, 3}; }), PredictorErrc::WrongFeatureSet);
  expect(edit([](J& j) {
           j["windows"] = {1, 3};
           j["feature_names"] = J::array();
           for (const auto& n : feature_names(FeatureSpec{disk_schema(), {1, 3}})) {
             j["feature_names"].push_back(n);
           }
         }),
         PredictorErrc::WrongFeatureSet);  // trees still have the 31-feature layout
  // A missing file.
  auto missing = RiskModel::load("/nonexistent/model.json");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().errc, PredictorErrc::OpenData);
}

TEST(RiskModel, CpuModelRefusesDiskTelemetry) {
  CpuSynthConfig c;
  c.hosts = 150;
  c.steps = 30;
  c.anomaly_fraction = 0.3;
  const auto cpu = generate_cpu_telemetry(c);
  TrainParams p;
  p.rounds = 5;
  auto split = split_by_days(cpu, 20);
  ASSERT_TRUE(split);
  auto model = train_risk_model(cpu, *split, p);
  ASSERT_TRUE(model) << model.error().message();
  EXPECT_EQ(model->spec().schema, cpu_schema());
  // Both schemas have five channels: the device kind is what keeps disk rows out.
  DeviceTelemetryHistory disk{"d", "h", "ST3000DM001", {{0, {1, 0, 100, 30, 0}}}};
  auto r = model->score({disk});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().errc, PredictorErrc::WrongFeatureSet);
  auto back = RiskModel::from_json_text(model->to_json_text());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->spec().schema.kind, DeviceKind::Cpu);
  EXPECT_TRUE(back->score({cpu.devices[0].history}));
}

TEST(Trainer, BadArgumentsAreRefused) {
  const auto& data = small_backblaze();
  EXPECT_FALSE(split_by_days(data, 0));
  EXPECT_FALSE(split_by_days(data, 16));
  TrainParams p;
  p.horizon = 0;
  EXPECT_EQ(train_risk_model(data, small_split(), p).error().errc, PredictorErrc::BadArgument);
  p.horizon = 20;  // longer than the training range
  EXPECT_EQ(train_risk_model(data, small_split(), p).error().errc, PredictorErrc::BadArgument);
  p = TrainParams{};
  p.objective = "rank:nonsense";
  p.rounds = 1;
  EXPECT_EQ(train_risk_model(data, small_split(), p).error().errc, PredictorErrc::Train);
}

}  // namespace
}  // namespace ferry::predictor
