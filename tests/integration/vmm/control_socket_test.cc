// The control socket of a running VMM: status, pause, resume, quit, and its safety rules.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "subprocess.h"
#include "test_env.h"

namespace ferry::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

nlohmann::json ctl(const std::string& sock, const std::string& cmd) {
  auto r = run_command({ferry_binary(), "ctl", "--control", sock, cmd}, seconds(20));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  return j;
}

TEST(ControlSocket, StatusPauseResumeQuit) {
  FERRY_REQUIRE_KVM();
  const std::string sock = make_temp_dir("ferry-ctl") + "/vm.sock";
  Subprocess vm({ferry_binary(), "run", "--kernel", test_guest(), "--mem", "128M", "--control",
                 sock, "--cmdline", "wss=8 duration=0 report=100"});
  ASSERT_TRUE(vm.wait_for_output("progress", seconds(30))) << vm.out() << vm.err();

  struct stat st {};
  ASSERT_EQ(stat(sock.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto status = ctl(sock, "status");
  EXPECT_EQ(status["ok"], true);
  EXPECT_EQ(status["status"]["state"], "running");
  EXPECT_EQ(status["status"]["memory_bytes"], 128u << 20);

  EXPECT_EQ(ctl(sock, "pause")["ok"], true);
  EXPECT_EQ(ctl(sock, "status")["status"]["state"], "paused");
  // A paused guest prints nothing: no progress line appears while paused.
  const size_t before = vm.out().size();
  std::this_thread::sleep_for(milliseconds(400));
  EXPECT_EQ(vm.out().size(), before);

  EXPECT_EQ(ctl(sock, "resume")["ok"], true);
  EXPECT_EQ(ctl(sock, "status")["status"]["state"], "running");
  const size_t resumed = vm.out().size();
  EXPECT_TRUE(vm.wait_for_output("progress", seconds(5)));
  std::this_thread::sleep_for(milliseconds(400));
  EXPECT_GT(vm.out().size(), resumed);

  EXPECT_EQ(ctl(sock, "quit")["ok"], true);
  EXPECT_EQ(vm.wait(seconds(20)), 0);
  EXPECT_NE(access(sock.c_str(), F_OK), 0) << "socket file should be removed on exit";
}

TEST(ControlSocket, UnknownAndMalformedRequestsGetClearErrors) {
  FERRY_REQUIRE_KVM();
  const std::string sock = make_temp_dir("ferry-ctl") + "/vm.sock";
  Subprocess vm({ferry_binary(), "run", "--kernel", test_guest(), "--mem", "64M", "--control", sock,
                 "--cmdline", "wss=4 duration=0"});
  ASSERT_TRUE(vm.wait_for_output("FERRY-GUEST ready", seconds(30)));
  auto r = run_command({ferry_binary(), "ctl", "--control", sock, "--raw", "{\"cmd\":\"fly\"}"},
                       seconds(20));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("unknown command 'fly'"), std::string::npos) << r.out << r.err;
  r = run_command({ferry_binary(), "ctl", "--control", sock, "--raw", "not json"}, seconds(20));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("not a JSON object"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(ctl(sock, "status")["status"]["state"], "running");  // still serving
  ctl(sock, "quit");
  EXPECT_EQ(vm.wait(seconds(20)), 0);
}

TEST(ControlSocket, RefusesSymlinkAndWorldWritableDirectory) {
  FERRY_REQUIRE_KVM();
  const std::string dir = make_temp_dir("ferry-ctl");
  const std::string link = dir + "/vm.sock";
  ASSERT_EQ(symlink("/tmp/somewhere-else.sock", link.c_str()), 0);
  auto r = run_command(
      {ferry_binary(), "run", "--kernel", test_guest(), "--mem", "64M", "--control", link},
      seconds(30));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("symlink"), std::string::npos) << r.err;

  const std::string open_dir = make_temp_dir("ferry-ctl-open");
  ASSERT_EQ(chmod(open_dir.c_str(), 0777), 0);
  r = run_command({ferry_binary(), "run", "--kernel", test_guest(), "--mem", "64M", "--control",
                   open_dir + "/vm.sock"},
                  seconds(30));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("world-writable"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ferry::testing
