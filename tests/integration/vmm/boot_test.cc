// Boots the self-verifying test guest through `ferry run` and checks what it reports.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include "subprocess.h"
#include "test_env.h"

namespace ferry::testing {
namespace {

using std::chrono::seconds;

RunResult run_guest(const std::vector<std::string>& extra, const std::string& cmdline) {
  std::vector<std::string> argv{ferry_binary(), "run",       "--kernel",
                                test_guest(),   "--cmdline", cmdline};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run_command(argv, seconds(120));
}

uint64_t number_after(const std::string& text, const std::string& key) {
  std::smatch m;
  if (std::regex_search(text, m, std::regex(key + "=(\\d+)"))) {
    return std::stoull(m[1]);
  }
  return 0;
}

TEST(VmmBoot, TestGuestBootsDirtiesMemoryAndVerifiesEveryPage) {
  FERRY_REQUIRE_KVM();
  auto r = run_guest({"--mem", "256M"}, "wss=32 duration=1 fill=full pattern=random");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("FERRY-GUEST ready vcpus=1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("verify ok pages=8192"), std::string::npos) << r.out;
  EXPECT_GT(number_after(r.out, "writes"), 1000u) << r.out;
  EXPECT_NE(r.out.find("failures=0 time_backwards=0"), std::string::npos) << r.out;
}

TEST(VmmBoot, SmpGuestRunsOnTwoVcpus) {
  FERRY_REQUIRE_KVM();
  auto r = run_guest({"--mem", "256M", "--cpus", "2"}, "wss=32 duration=1 cpus=2");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("FERRY-GUEST ready vcpus=2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("verify ok"), std::string::npos) << r.out;
}

TEST(VmmBoot, BlockDeviceRoundTripThroughTheGuest) {
  FERRY_REQUIRE_KVM();
  const std::string dir = make_temp_dir("ferry-blk");
  const std::string image = dir + "/disk.img";
  ASSERT_EQ(truncate(image.c_str(), 0), -1);  // does not exist yet
  { std::ofstream(image).flush(); }
  ASSERT_EQ(truncate(image.c_str(), 16 << 20), 0);
  auto r = run_guest({"--mem", "256M", "--disk", image}, "wss=16 duration=1");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("disk ok base=0xd0000000 capacity_sectors=32768"), std::string::npos)
      << r.out;
  EXPECT_GT(number_after(r.out, "disk_sectors"), 0u) << r.out;
  // The guest's writes really reached the image file: it is no longer all zeros.
  std::ifstream in(image, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(bytes.find_first_not_of('\0'), std::string::npos);
}

TEST(VmmBoot, MalformedVirtioFromTheGuestNeverTakesDownTheVmm) {
  FERRY_REQUIRE_KVM();
  const std::string dir = make_temp_dir("ferry-bad");
  const std::string image = dir + "/disk.img";
  { std::ofstream(image).flush(); }
  ASSERT_EQ(truncate(image.c_str(), 4 << 20), 0);
  auto r = run_guest({"--mem", "128M", "--disk", image}, "mode=badvirtio");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("BADVIRTIO summary"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("dead=0"), std::string::npos) << r.out;
  EXPECT_GE(number_after(r.out, "cases"), 30u);
}

TEST(VmmBoot, GuestExceptionIsReportedWithTheGuestStatus) {
  FERRY_REQUIRE_KVM();
  auto r = run_guest({"--mem", "128M"}, "mode=fault");
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;  // the guest's exception handler exits 3
  EXPECT_NE(r.out.find("EXCEPTION vec=14"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace ferry::testing
