// `ferry run` on bad input: a clear message, a non-zero exit status, never a crash.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "subprocess.h"
#include "test_env.h"

namespace ferry::testing {
namespace {

using std::chrono::seconds;

RunResult ferry_run(std::vector<std::string> args) {
  std::vector<std::string> argv{ferry_binary(), "run"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, seconds(60));
}

void expect_refused(const RunResult& r, const std::string& message) {
  ASSERT_TRUE(r.exit_code.has_value()) << "ferry hung";
  EXPECT_NE(*r.exit_code, 0);
  EXPECT_LT(*r.exit_code, 128) << "killed by a signal: " << r.err;
  EXPECT_NE(r.err.find(message), std::string::npos) << "stderr: " << r.err;
}

TEST(VmmBadInput, MissingKernel) {
  expect_refused(ferry_run({"--kernel", "/nonexistent/kernel"}), "nonexistent");
}

TEST(VmmBadInput, CorruptKernel) {
  const std::string dir = make_temp_dir("ferry-bad");
  std::ofstream(dir + "/junk") << std::string(5000, 'x');
  expect_refused(ferry_run({"--kernel", dir + "/junk"}), "unrecognised kernel format");
}

TEST(VmmBadInput, TruncatedTestGuest) {
  std::ifstream in(test_guest(), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 4096u);
  const std::string dir = make_temp_dir("ferry-bad");
  std::ofstream(dir + "/short.bin", std::ios::binary) << bytes.substr(0, 2048);
  FERRY_REQUIRE_KVM();
  expect_refused(ferry_run({"--kernel", dir + "/short.bin"}), "ferry run:");
}

TEST(VmmBadInput, MemoryTooSmallOrTooLarge) {
  expect_refused(ferry_run({"--kernel", test_guest(), "--mem", "1M"}), "too small");
  expect_refused(ferry_run({"--kernel", test_guest(), "--mem", "900T"}), "larger than");
  expect_refused(ferry_run({"--kernel", test_guest(), "--mem", "12Q"}), "memory size");
  FERRY_REQUIRE_KVM();
  expect_refused(ferry_run({"--kernel", test_guest(), "--mem", "500G"}), "exceeds this host");
}

TEST(VmmBadInput, MissingAndReadOnlyDiskImages) {
  FERRY_REQUIRE_KVM();
  expect_refused(ferry_run({"--kernel", test_guest(), "--disk", "/nonexistent/disk.img"}),
                 "/nonexistent/disk.img");
  const std::string dir = make_temp_dir("ferry-bad");
  const std::string image = dir + "/ro.img";
  { std::ofstream(image).flush(); }
  ASSERT_EQ(truncate(image.c_str(), 1 << 20), 0);
  ASSERT_EQ(chmod(image.c_str(), 0444), 0);
  expect_refused(ferry_run({"--kernel", test_guest(), "--disk", image}), "read-only");
  // Asked for read-only, it boots (and the guest sees a read-only disk).
  auto r = ferry_run({"--kernel", test_guest(), "--mem", "64M", "--disk", image + ",ro",
                      "--cmdline", "mode=hello"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(VmmBadInput, UnusableKvmDevice) {
  expect_refused(ferry_run({"--kernel", test_guest(), "--kvm-device", "/dev/null"}),
                 "cannot use /dev/null as KVM");
  expect_refused(ferry_run({"--kernel", test_guest(), "--kvm-device", "/nonexistent/kvm"}),
                 "cannot use /nonexistent/kvm as KVM");
}

TEST(VmmBadInput, BadVcpuCount) {
  expect_refused(ferry_run({"--kernel", test_guest(), "--cpus", "0"}), "vCPU count");
  expect_refused(ferry_run({"--kernel", test_guest(), "--cpus", "1000"}), "vCPU count");
}

}  // namespace
}  // namespace ferry::testing
