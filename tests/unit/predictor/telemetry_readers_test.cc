// The /proc and /sys readers on fixture trees (bare metal, a VM without cpufreq, broken
// files), the smartctl JSON parser, the CPU reading built from them, and the speed probe.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "ferry/kernel-interfaces/telemetry_cpufreq.h"
#include "ferry/kernel-interfaces/telemetry_diskstats.h"
#include "ferry/predictor/host_telemetry.h"
#include "test_util.h"

namespace ferry::predictor {
namespace {

using kernel::TelemetryErrc;

std::string metal() { return test::fixtures() + "/host_metal"; }

TEST(Diskstats, ParsesAllFieldLayouts) {
  auto d = kernel::read_diskstats(metal());
  ASSERT_TRUE(d) << d.error().message();
  ASSERT_EQ(d->size(), 3u);
  const auto& sda = (*d)[0];
  EXPECT_EQ(sda.name, "sda");
  EXPECT_EQ(sda.major, 8u);
  EXPECT_EQ(sda.reads, 1000u);
  EXPECT_EQ(sda.write_ms, 900u);
  EXPECT_EQ(sda.weighted_io_ms, 1400u);
  EXPECT_FALSE(sda.discards.has_value());  // 14-field kernel: no discard fields
  const auto& nvme = (*d)[1];
  ASSERT_TRUE(nvme.discards && nvme.flushes);
  EXPECT_EQ(*nvme.discards, 7u);
  EXPECT_EQ(*nvme.flush_ms, 9u);
}

TEST(Diskstats, BlockStatFilesMatchDiskstats) {
  auto b = kernel::read_block_stats(metal());
  ASSERT_TRUE(b) << b.error().message();
  ASSERT_EQ(b->size(), 2u);  // loop0 has no stat file: skipped
  EXPECT_EQ((*b)[0].name, "nvme0n1");
  EXPECT_EQ(*(*b)[0].flushes, 4u);
  EXPECT_EQ((*b)[1].name, "sda");
  EXPECT_EQ((*b)[1].sectors_written, 160000u);
}

TEST(Diskstats, AbsentAndMalformedSources) {
  auto absent = kernel::read_diskstats(test::fixtures() + "/host_vm");
  ASSERT_FALSE(absent);
  EXPECT_EQ(absent.error().errc, TelemetryErrc::Absent);
  EXPECT_NE(absent.error().message().find("/proc/diskstats: absent"), std::string::npos);
  auto no_block = kernel::read_block_stats(test::fixtures() + "/host_vm");
  ASSERT_FALSE(no_block);
  EXPECT_EQ(no_block.error().errc, TelemetryErrc::Absent);
  auto bad = kernel::read_diskstats(test::fixtures() + "/host_bad");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().errc, TelemetryErrc::Malformed);
  EXPECT_FALSE(kernel::parse_block_stat("sda", "1 2 3"));
  EXPECT_FALSE(kernel::parse_diskstats("8 0 sda 1 2 3 4 5 6 7 8 9 10 x\n"));
}

TEST(Diskstats, IoRatesFromTwoSnapshots) {
  kernel::DiskStats a, b;
  a.name = b.name = "sda";
  a.reads = 100, b.reads = 150;
  a.read_ms = 1000, b.read_ms = 1250;  // 250 ms over 50 reads
  a.writes = b.writes = 10;
  a.io_ms = 0, b.io_ms = 500;
  a.weighted_io_ms = 0, b.weighted_io_ms = 2000;
  b.in_flight = 3;
  auto r = io_rates(a, b, 1000);
  ASSERT_TRUE(r);
  EXPECT_DOUBLE_EQ(r->read_latency_ms, 5.0);
  EXPECT_TRUE(std::isnan(r->write_latency_ms));  // no writes: latency unknown, not 0
  EXPECT_DOUBLE_EQ(r->utilisation, 0.5);
  EXPECT_DOUBLE_EQ(r->queue_depth, 2.0);
  EXPECT_EQ(r->in_flight, 3u);
  EXPECT_FALSE(io_rates(b, a, 1000));  // counters going backwards
  EXPECT_FALSE(io_rates(a, b, 0));
}

TEST(Diskstats, LiveProcIsReadable) {
  // Every Linux host has /proc/diskstats; this checks the real kernel layout parses.
  auto live = kernel::read_diskstats("");
  ASSERT_TRUE(live) << live.error().message();
}

TEST(CpuFreq, BareMetalFrequenciesAndThrottleCounters) {
  auto cpus = kernel::read_cpu_freq(metal());
  ASSERT_TRUE(cpus) << cpus.error().message();
  ASSERT_EQ(cpus->size(), 4u);
  EXPECT_EQ(*(*cpus)[3].cur_khz, 1200000u);
  EXPECT_EQ(*(*cpus)[2].core_throttle_count, 4u);
  EXPECT_TRUE(kernel::has_frequency(*cpus));
  EXPECT_TRUE(kernel::has_throttle_counters(*cpus));
  const auto r = cpu_reading_from(*cpus, 0.9f);
  EXPECT_TRUE(r.absent.empty());
  EXPECT_NEAR(r.values[0], (1.0 + 0.8 + 0.6 + 0.4) / 4, 1e-6);  // mean ratio
  EXPECT_NEAR(r.values[1], 0.4, 1e-6);                          // slowest core
  EXPECT_NEAR(r.values[2], 0.6, 1e-6);                          // spread
  EXPECT_FLOAT_EQ(r.values[3], 0 + 2 + 4 + 6);                  // core throttle events
  EXPECT_FLOAT_EQ(r.values[4], 0.9f);
}

TEST(CpuFreq, VirtualMachineReportsAbsentSourcesNotZeros) {
  auto cpus = kernel::read_cpu_freq(test::fixtures() + "/host_vm");
  ASSERT_TRUE(cpus) << cpus.error().message();
  ASSERT_EQ(cpus->size(), 2u);
  EXPECT_FALSE((*cpus)[0].cur_khz.has_value());
  EXPECT_FALSE(kernel::has_frequency(*cpus));
  const auto r = cpu_reading_from(*cpus, kMissing);
  EXPECT_EQ(r.absent, (std::vector<std::string>{"cpufreq", "thermal_throttle", "speed_probe"}));
  for (float v : r.values) {
    EXPECT_TRUE(std::isnan(v));
  }
  auto none = kernel::read_cpu_freq(test::fixtures() + "/host_metal/proc");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().errc, TelemetryErrc::Absent);
  auto bad = kernel::read_cpu_freq(test::fixtures() + "/host_bad");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().errc, TelemetryErrc::Malformed);
  EXPECT_FALSE(kernel::parse_sysfs_u64("", "x"));
  EXPECT_EQ(*kernel::parse_sysfs_u64(" 42\n", "x"), 42u);
}

TEST(CpuFreq, LiveReadingNeverInventsValues) {
  SpeedProbe probe;
  const auto r = read_cpu_reading("", probe);
  ASSERT_EQ(r.values.size(), cpu_schema().channels.size());
  // Whatever this host lacks must be listed, and its channels left NaN.
  const bool no_freq = std::find(r.absent.begin(), r.absent.end(), "cpufreq") != r.absent.end();
  EXPECT_EQ(no_freq, std::isnan(r.values[0]));
  EXPECT_FALSE(std::isnan(r.values[4]));
}

TEST(SpeedProbe, RatioIsNearOneOnAnIdleCore) {
  SpeedProbe probe;
  EXPECT_GT(probe.calibrate(3), 0.0);
  const float r = probe.ratio(3);
  EXPECT_GT(r, 0.2f);  // the machine is shared: only a broad sanity range
  EXPECT_LE(r, 2.0f);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Smartctl, ParsesAtaAttributes) {
  auto v = parse_smartctl_json(slurp(test::fixtures() + "/smartctl/ata.json"));
  ASSERT_TRUE(v) << v.error().message();
  ASSERT_EQ(v->size(), disk_schema().channels.size());
  EXPECT_FLOAT_EQ((*v)[0], 158913952.0f);
  EXPECT_FLOAT_EQ((*v)[1], 8.0f);
  EXPECT_FLOAT_EQ((*v)[2], 33602.0f);
  EXPECT_FLOAT_EQ((*v)[3], 31.0f);  // current temperature from the packed raw value
  EXPECT_TRUE(std::isnan((*v)[4]));  // SMART 197 not reported: missing, not 0
}

TEST(Smartctl, NonAtaAndGarbageAreErrors) {
  auto nvme = parse_smartctl_json(slurp(test::fixtures() + "/smartctl/nvme.json"));
  ASSERT_FALSE(nvme);
  EXPECT_NE(nvme.error().message().find("ata_smart_attributes"), std::string::npos);
  EXPECT_FALSE(parse_smartctl_json("{oops"));
  auto unsafe = read_smart("/dev/sda; rm -rf /");
  ASSERT_FALSE(unsafe);
  EXPECT_EQ(unsafe.error().errc, PredictorErrc::BadArgument);
  // No such device (and maybe no smartctl): an error, never made-up values.
  EXPECT_FALSE(read_smart("/dev/ferry-no-such-disk"));
}

}  // namespace
}  // namespace ferry::predictor
