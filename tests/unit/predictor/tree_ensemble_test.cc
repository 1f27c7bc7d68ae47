// Our evaluator of XGBoost's JSON trees against XGBoost itself: same predictions (rank and
// binary objectives, with missing values), same approximate contributions, and clear
// errors for corrupt tree JSON.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "ferry/predictor/tree_ensemble.h"
#include "ferry/predictor/xgb_booster.h"

namespace ferry::predictor {
namespace {

constexpr std::size_t kRows = 3000, kCols = 8;

struct Synthetic {
  std::vector<float> x, y;
  std::vector<uint32_t> groups;
};

Synthetic make_data() {
  std::mt19937 rng(7);
  std::normal_distribution<float> n;
  std::uniform_real_distribution<float> u;
  Synthetic d;
  for (std::size_t r = 0; r < kRows; ++r) {
    float score = 0;
    for (std::size_t c = 0; c < kCols; ++c) {
      float v = n(rng) * (c + 1.0f);
      if (u(rng) < 0.1f) {
        v = NAN;  // missing cells exercise the default branches
      } else if (c < 3) {
        score += v / (c + 1.0f);
      }
      d.x.push_back(v);
    }
    d.y.push_back(score + 0.5f * n(rng) > 1.5f ? 1.0f : 0.0f);
  }
  d.groups.assign(kRows / 100, 100);
  return d;
}

XgbBooster train(const Synthetic& d, const XgbMatrix& m, const char* objective) {
  auto b = XgbBooster::create(m);
  EXPECT_TRUE(b);
  for (auto [k, v] : {std::pair{"objective", objective}, {"max_depth", "5"}, {"eta", "0.3"},
                      {"nthread", "2"}, {"tree_method", "hist"}, {"verbosity", "0"}}) {
    EXPECT_TRUE(b->set_param(k, v));
  }
  for (int i = 0; i < 25; ++i) {
    EXPECT_TRUE(b->update(i, m));
  }
  (void)d;
  return std::move(*b);
}

class TreeParity : public ::testing::TestWithParam<const char*> {};

TEST_P(TreeParity, PredictionsAndContributionsMatchXgboost) {
  const auto d = make_data();
  auto m = XgbMatrix::create(d.x.data(), kRows, kCols);
  ASSERT_TRUE(m);
  ASSERT_TRUE(m->set_labels(d.y));
  ASSERT_TRUE(m->set_groups(d.groups));
  const auto booster = train(d, *m, GetParam());
  auto json = booster.save_json();
  ASSERT_TRUE(json);
  auto ens = TreeEnsemble::from_xgboost_json(nlohmann::json::parse(*json), kCols);
  ASSERT_TRUE(ens) << ens.error().message();
  EXPECT_EQ(ens->tree_count(), 25u);
  auto ref = booster.predict(*m);
  auto ref_contrib = booster.predict_contributions(*m);
  ASSERT_TRUE(ref && ref_contrib);
  ASSERT_EQ(ref->size(), kRows);
  ASSERT_EQ(ref_contrib->size(), kRows * (kCols + 1));
  double worst = 0, worst_contrib = 0;
  for (std::size_t r = 0; r < kRows; ++r) {
    const float* row = d.x.data() + r * kCols;
    worst = std::max(worst, std::fabs(double(ens->predict(row)) - (*ref)[r]));
    std::vector<float> c(kCols + 1, 0.0f);
    ens->contributions(row, c.data());
    float total = 0;
    for (std::size_t k = 0; k <= kCols; ++k) {
      worst_contrib = std::max(worst_contrib, std::fabs(double(c[k]) - (*ref_contrib)[r * (kCols + 1) + k]));
      total += c[k];
    }
    EXPECT_NEAR(total, ens->predict_margin(row), 1e-4);
  }
  EXPECT_LT(worst, 1e-5) << GetParam();
  EXPECT_LT(worst_contrib, 1e-4) << GetParam();
  // The model also survives a round trip through XGBoost's loader.
  auto reloaded = XgbBooster::from_json(*json);
  ASSERT_TRUE(reloaded);
  auto again = reloaded->predict(*m);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *ref);
}

INSTANTIATE_TEST_SUITE_P(Objectives, TreeParity,
                         ::testing::Values("rank:pairwise", "rank:ndcg", "binary:logistic"));

nlohmann::json tiny_model() {
  // One tree: x0 < 0.5 ? 1.0 : -1.0 (missing goes right).
  return nlohmann::json::parse(R"({"learner": {
    "objective": {"name": "rank:pairwise"},
    "learner_model_param": {"base_score": "5E-1", "num_feature": "2"},
    "gradient_booster": {"name": "gbtree", "model": {"trees": [{
      "tree_param": {"num_nodes": "3"},
      "left_children": [1, -1, -1], "right_children": [2, -1, -1],
      "split_indices": [0, 0, 0], "split_conditions": [0.5, 1.0, -1.0],
      "default_left": [0, 0, 0], "sum_hessian": [4.0, 1.0, 3.0]}]}}}})");
}

TEST(TreeEnsemble, HandBuiltTree) {
  auto ens = TreeEnsemble::from_xgboost_json(tiny_model(), 2);
  ASSERT_TRUE(ens) << ens.error().message();
  const float lo[] = {0.0f, 0.0f}, hi[] = {0.5f, 0.0f}, nan[] = {NAN, 0.0f};
  EXPECT_FLOAT_EQ(ens->predict(lo), 1.5f);
  EXPECT_FLOAT_EQ(ens->predict(hi), -0.5f);  // equal to the split goes right
  EXPECT_FLOAT_EQ(ens->predict(nan), -0.5f);
  float c[3] = {0, 0, 0};
  ens->contributions(lo, c);
  // Root mean = (1*1 + 3*-1)/4 = -0.5; left leaf adds 1.5 to feature 0.
  EXPECT_FLOAT_EQ(c[0], 1.5f);
  EXPECT_FLOAT_EQ(c[2], 0.0f);  // base 0.5 + root mean -0.5
}

TEST(TreeEnsemble, CorruptTreesAreRejected) {
  auto check = [](auto edit, PredictorErrc errc, std::size_t nf = 2) {
    auto j = tiny_model();
    edit(j["learner"]["gradient_booster"]["model"]["trees"][0], j);
    auto ens = TreeEnsemble::from_xgboost_json(j, nf);
    ASSERT_FALSE(ens);
    EXPECT_EQ(ens.error().errc, errc) << ens.error().message();
  };
  using J = nlohmann::json;
  check([](J& t, J&) { t["left_children"] = {1, -1}; }, PredictorErrc::CorruptModel);
  check([](J& t, J&) { t["right_children"] = {7, -1, -1}; }, PredictorErrc::CorruptModel);
  check([](J& t, J&) { t["left_children"] = {0, -1, -1}; }, PredictorErrc::CorruptModel);  // cycle
  check([](J& t, J&) { t["split_indices"] = {5, 0, 0}; }, PredictorErrc::WrongFeatureSet);
  check([](J& t, J&) { t["split_conditions"] = {"x", 1.0, -1.0}; }, PredictorErrc::CorruptModel);
  check([](J& t, J&) { t.erase("sum_hessian"); }, PredictorErrc::CorruptModel);
  check([](J&, J& j) { j["learner"]["objective"]["name"] = "multi:softprob"; },
        PredictorErrc::CorruptModel);
  check([](J&, J& j) { j["learner"].erase("gradient_booster"); }, PredictorErrc::CorruptModel);
  check([](J&, J&) {}, PredictorErrc::WrongFeatureSet, 3);  // num_feature 2 vs 3 expected
}

TEST(XgbBooster, LoadingGarbageIsAnError) {
  auto b = XgbBooster::from_json("{not json");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().errc, PredictorErrc::CorruptModel);
}

}  // namespace
}  // namespace ferry::predictor
