// Report JSON: every documented field is present and typed.
#include "ferry/migration/report.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "ferry/migration/report_render.h"

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

TEST(Report, RendersTableAndSvg) {
  MigrationReport r;
  r.role = "source";
  r.outcome = "completed";
  r.start_ns = 1'000'000'000;
  r.end_ns = 1'500'000'000;
  r.phases = {{MigrationPhase::PreMigration, 1'000'000'000, 1'010'000'000},
              {MigrationPhase::Brownout, 1'010'000'000, 1'450'000'000},
              {MigrationPhase::Blackout, 1'450'000'000, 1'455'000'000},
              {MigrationPhase::Commit, 1'455'000'000, 1'500'000'000}};
  for (uint32_t i = 0; i < 3; ++i) {
    RoundReport round;
    round.round = i;
    round.blackout = i == 2;
    round.start_ns = 1'010'000'000 + i * 100'000'000ull;
    round.duration_ns = 90'000'000;
    round.pages_sent = 1000 >> i;
    round.wire_bytes = 2'000'000 >> i;
    round.throughput_bytes_per_s = 45e6;
    r.rounds.push_back(round);
  }
  r.decisions.push_back({1, ConvergenceAction::Continue, 20, 30.0, "not converging <&>"});
  r.pause_ns = 1'450'000'000;
  r.resume_ns = 1'454'000'000;
  r.blackout_ns = 4'000'000;
  nlohmann::json j = to_json(r);
  std::string table = render_report_table(j);
  EXPECT_NE(table.find("outcome: completed"), std::string::npos);
  EXPECT_NE(table.find("blackout (dest)"), std::string::npos);
  EXPECT_NE(table.find("4.0 ms"), std::string::npos);
  EXPECT_NE(table.find("brownout"), std::string::npos);
  EXPECT_NE(table.find("not converging"), std::string::npos);
  EXPECT_NE(table.find("2*"), std::string::npos);  // blackout round marked
  std::string svg = render_report_svg(j);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("blackout 4.0 ms"), std::string::npos);
  EXPECT_NE(svg.find("round 2"), std::string::npos);
  EXPECT_EQ(svg.find("<&>"), std::string::npos);  // text is escaped
  // An empty object (or a foreign report) still renders without crashing.
  EXPECT_FALSE(render_report_table(nlohmann::json::object()).empty());
  EXPECT_FALSE(render_report_svg(nlohmann::json::object()).empty());
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  ProgressEvent e;
  e.phase = MigrationPhase::Brownout;
  e.round = 3;
  e.remaining_bytes = 12u << 20;
  e.rate_bytes_per_s = 450.0 * 1048576;
  e.eta_s = 0.5;
  e.throttle_percent = 20;
  std::string line = render_progress_line(to_json(e));
  EXPECT_NE(line.find("brownout"), std::string::npos) << line;
  EXPECT_NE(line.find("12.0 MiB"), std::string::npos) << line;
  EXPECT_NE(line.find("450.0 MiB/s"), std::string::npos) << line;
  EXPECT_NE(line.find("500.0 ms"), std::string::npos) << line;
  EXPECT_NE(line.find("throttle 20%"), std::string::npos) << line;
  EXPECT_EQ(format_ns(2.5e9), "2.50 s");
}

}  // namespace
}  // namespace ferry::migration
