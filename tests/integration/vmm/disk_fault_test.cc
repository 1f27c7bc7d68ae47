// Disk fault injection in the block backend (for agent tests and demos, never on by
// default): EIO ranges and latency given to `ferry run` or set at run time over the control
// socket reach the guest as failed or slow virtio-blk requests, and clearing them heals it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "subprocess.h"
#include "test_env.h"

namespace ferry::testing {
namespace {

using namespace std::chrono_literals;

std::string make_disk(const std::string& dir) {
  const std::string image = dir + "/disk.img";
  { std::ofstream(image).flush(); }
  EXPECT_EQ(::truncate(image.c_str(), 16 << 20), 0);
  return image;
}

// The guest's cumulative count of successful disk requests in its latest progress line.
uint64_t last_disk_ops(const std::string& out) {
  uint64_t last = 0;
  std::regex re("disk_ops=(\\d+)");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it) {
    last = std::stoull((*it)[1]);
  }
  return last;
}

nlohmann::json raw_ctl(const std::string& sock, const std::string& request) {
  auto r = run_command({ferry_binary(), "ctl", "--control", sock, "--raw", request}, 20s);
  try {
    return nlohmann::json::parse(r.out);
  } catch (const nlohmann::json::exception&) {
    return {{"unparsed", r.out + r.err}};
  }
}

TEST(DiskFaults, EioRangeFromTheCommandLineFailsTheGuestsRequests) {
  FERRY_REQUIRE_KVM();
  const std::string dir = make_temp_dir("ferry-dfault");
  auto r = run_command({ferry_binary(), "run", "--kernel", test_guest(), "--mem", "128M", "--disk",
                        make_disk(dir), "--inject-disk-eio", "0:32768", "--cmdline",
                        "wss=8 duration=1"},
                       120s);
  EXPECT_EQ(r.exit_code, 1) << "the guest saw I/O errors and failed its check:\n" << r.out << r.err;
  EXPECT_NE(r.out.find("disk error"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("FAULT INJECTION"), std::string::npos) << "injection is announced";
}

TEST(DiskFaults, BadInjectionArgumentsAreRefused) {
  FERRY_REQUIRE_KVM();
  const std::string dir = make_temp_dir("ferry-dfault");
  auto r = run_command({ferry_binary(), "run", "--kernel", test_guest(), "--disk", make_disk(dir),
                        "--inject-disk-eio", "lots"},
                       30s);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("FIRST:COUNT"), std::string::npos) << r.err;
}

TEST(DiskFaults, InjectedAtRunTimeAndClearedOverTheControlSocket) {
  FERRY_REQUIRE_KVM();
  const std::string dir = make_temp_dir("ferry-dfault");
  const std::string sock = dir + "/vm.sock";
  Subprocess vm({ferry_binary(), "run", "--kernel", test_guest(), "--mem", "128M", "--disk",
                 make_disk(dir), "--control", sock, "--cmdline",
                 "wss=8 duration=6 report=200 disk_ops=4"});
  ASSERT_TRUE(vm.wait_for_output("progress", 30s)) << vm.out() << vm.err();
  EXPECT_EQ(vm.out().find("disk error"), std::string::npos) << "no errors before injection";

  auto bad = raw_ctl(sock, R"({"cmd":"inject-disk-fault","latency_us":-5})");
  EXPECT_EQ(bad["ok"], false) << bad;
  auto no_disk = raw_ctl(sock, R"({"cmd":"inject-disk-fault","disk":3,"eio_sectors":1})");
  EXPECT_EQ(no_disk["ok"], false) << no_disk;
  EXPECT_NE(no_disk.value("error", "").find("no disk 3"), std::string::npos) << no_disk;

  auto on = raw_ctl(sock, R"({"cmd":"inject-disk-fault","eio_first_sector":0,"eio_sectors":32768})");
  ASSERT_EQ(on["ok"], true) << on;
  ASSERT_TRUE(vm.wait_for_output("disk error", 20s)) << vm.out();
  auto off = raw_ctl(sock, R"({"cmd":"inject-disk-fault"})");
  ASSERT_EQ(off["ok"], true) << off;
  // Requests succeed again: the successful-request count grows after clearing.
  const uint64_t ops_at_clear = last_disk_ops(vm.out());
  const std::size_t errors_at_clear = [&] {
    std::string out = vm.out();
    std::size_t n = 0;
    for (auto p = out.find("disk error"); p != std::string::npos; p = out.find("disk error", p + 1)) {
      ++n;
    }
    return n;
  }();
  auto exit = vm.wait(60s);
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(*exit, 1) << "the guest reports the injected errors at the end";
  std::string out = vm.out();
  std::size_t errors_total = 0;
  for (auto p = out.find("disk error"); p != std::string::npos; p = out.find("disk error", p + 1)) {
    ++errors_total;
  }
  // At most the requests already in flight fail after clearing.
  EXPECT_LE(errors_total, errors_at_clear + 2) << out;
  EXPECT_GT(last_disk_ops(out), ops_at_clear) << "disk requests succeed again after clearing:\n"
                                              << out;
}

}  // namespace
}  // namespace ferry::testing
