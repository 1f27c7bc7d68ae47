// Report JSON: every documented field is present and typed.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "ferry/migration/report.h"

namespace ferry::migration {
namespace {

TEST(Report, JsonCarriesPhasesRoundsDecisionsAndTotals) {
  MigrationReport r;
  r.role = "source";
  r.outcome = "completed";
  r.start_ns = 100;
  r.end_ns = 1100;
  r.phases = {{MigrationPhase::PreMigration, 100, 200}, {MigrationPhase::Brownout, 200, 900}};
  RoundReport round;
  round.round = 0;
  round.pages_sent = 10;
  round.codecs.zstd = 4;
  round.duration_ns = 700;
  r.rounds.push_back(round);
  r.decisions.push_back({1, ConvergenceAction::SwitchOver, 20, 1.5, "fits"});
  r.blackout_ns = 5000;
  r.guest_bytes = 40960;
  r.wire_bytes = 20480;
  r.compression_ratio = 2.0;
  nlohmann::json j = to_json(r);
  EXPECT_EQ(j["role"], "source");
  EXPECT_EQ(j["total_ns"], 1000);
  EXPECT_EQ(j["phases"][1]["phase"], "brownout");
  EXPECT_EQ(j["phases"][1]["duration_ns"], 700);
  EXPECT_EQ(j["rounds"][0]["codecs"]["zstd"], 4);
  EXPECT_EQ(j["decisions"][0]["action"], "switch-over");
  EXPECT_EQ(j["decisions"][0]["reason"], "fits");
  EXPECT_EQ(j["blackout_ns"], 5000);
  EXPECT_DOUBLE_EQ(j["compression_ratio"].get<double>(), 2.0);
  EXPECT_EQ(r.phase_duration_ns(MigrationPhase::Brownout), 700u);
  EXPECT_EQ(r.phase_duration_ns(MigrationPhase::Commit), 0u);
}

}  // namespace
}  // namespace ferry::migration
