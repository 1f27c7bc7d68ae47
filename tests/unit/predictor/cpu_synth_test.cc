// The synthetic CPU-frequency generator, and ranking its hosts with the same machinery
// as disks. Figures here are synthetic and say nothing about real hardware.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "ferry/predictor/cpu_synth.h"
#include "ferry/predictor/report.h"

namespace ferry::predictor {
namespace {

TEST(CpuSynth, DeterministicPerSeed) {
  CpuSynthConfig c;
  c.hosts = 50;
  c.steps = 20;
  const auto a = generate_cpu_telemetry(c), b = generate_cpu_telemetry(c);
  ASSERT_EQ(a.devices.size(), 50u);
  for (std::size_t i = 0; i < a.devices.size(); ++i) {
    ASSERT_EQ(a.devices[i].history.samples.size(), b.devices[i].history.samples.size());
    for (std::size_t s = 0; s < a.devices[i].history.samples.size(); ++s) {
      const auto& va = a.devices[i].history.samples[s].values;
      const auto& vb = b.devices[i].history.samples[s].values;
      for (std::size_t k = 0; k < va.size(); ++k) {
        ASSERT_TRUE(va[k] == vb[k] || (std::isnan(va[k]) && std::isnan(vb[k])));
      }
    }
  }
  c.seed = 2;
  const auto d = generate_cpu_telemetry(c);
  EXPECT_NE(d.devices[0].history.samples[0].values[0], a.devices[0].history.samples[0].values[0]);
}

TEST(CpuSynth, AnomaliesFaultsAndAbsentCounters) {
  CpuSynthConfig c;
  const auto ds = generate_cpu_telemetry(c);
  EXPECT_EQ(ds.schema, cpu_schema());
  std::set<std::string> kinds;
  std::size_t failed = 0, no_throttle = 0;
  for (const auto& d : ds.devices) {
    EXPECT_EQ(d.history.kind, DeviceKind::Cpu);
    if (!d.anomaly.empty()) {
      kinds.insert(d.anomaly);
    } else {
      EXPECT_FALSE(d.failure_day.has_value());
      EXPECT_EQ(d.history.samples.size(), static_cast<std::size_t>(c.steps));
    }
    if (d.failure_day) {
      ++failed;
      EXPECT_EQ(d.history.samples.back().day, *d.failure_day);  // stops reporting after
    }
    no_throttle += std::isnan(d.history.samples[0].values[3]) ? 1 : 0;
    for (const auto& s : d.history.samples) {
      ASSERT_GT(s.values[1], 0.0f);
      ASSERT_LE(s.values[1], s.values[0] + 1e-6f);  // min core <= mean
    }
  }
  EXPECT_EQ(kinds, (std::set<std::string>{kAnomalySustainedDrop, kAnomalyOscillation, kAnomalySingleCore}));
  EXPECT_GT(failed, 20u);
  EXPECT_GT(no_throttle, 10u);
}

TEST(CpuSynth, SameMachineryRanksAnomalousHosts) {
  CpuSynthConfig c;
  c.hosts = 300;
  const auto ds = generate_cpu_telemetry(c);
  EvalConfig cfg;
  cfg.train_days = 40;
  cfg.params.rounds = 30;
  cfg.with_classifier = false;
  auto rep = run_evaluation(ds, cfg);
  ASSERT_TRUE(rep) << rep.error().message();
  ASSERT_EQ(rep->methods.size(), 2u);  // ranker, rule
  const auto& ranker = rep->methods[0];
  EXPECT_GT(ranker.failures, 5u);
  EXPECT_GT(ranker.ndcg, 0.5);
  EXPECT_GT(static_cast<double>(ranker.caught) / ranker.failures, 0.5);
  // The SVG report escapes method names ("min core < 75%") so it stays well-formed XML.
  const std::string svg = render_svg(*rep, "synthetic <test>");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("min core &lt; 75%"), std::string::npos);
  EXPECT_NE(svg.find("synthetic &lt;test&gt;"), std::string::npos);
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '<'), std::count(svg.begin(), svg.end(), '>'));
  // Hosts get scored and explained through the public API too.
  auto scores = rep->ranker->score(histories_as_of(ds, 45), 2);
  ASSERT_TRUE(scores);
  EXPECT_FALSE(scores->empty());
}

}  // namespace
}  // namespace ferry::predictor
