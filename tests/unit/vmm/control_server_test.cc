#include "ferry/vmm/control_server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <future>

namespace ferry::vmm {
namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/ferry-ctl-unit-XXXXXX";
  return mkdtemp(tmpl);
}

TEST(ControlServer, DispatchesAndStreamsEvents) {
  const std::string path = temp_dir() + "/s.sock";
  auto server = ControlServer::create(path);
  ASSERT_TRUE(server) << server.error().message();
  (*server)->on("count", [](const nlohmann::json& req, ControlResponder& r) {
    for (int i = 0; i < req.value("n", 0); ++i) {
      r.send({{"event", "tick"}, {"i", i}});
    }
    return nlohmann::json{{"ok", true}, {"done", req.value("n", 0)}};
  });
  (*server)->start();
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::vector<int> ticks;
  auto reply = control_request(path, {{"cmd", "count"}, {"n", 3}},
                               [&](const nlohmann::json& e) { ticks.push_back(e["i"]); });
  ASSERT_TRUE(reply) << reply.error().message();
  EXPECT_EQ((*reply)["done"], 3);
  EXPECT_EQ(ticks, (std::vector<int>{0, 1, 2}));
  auto unknown = control_request(path, {{"cmd", "nope"}}, nullptr);
  ASSERT_TRUE(unknown);
  EXPECT_EQ((*unknown)["ok"], false);
  EXPECT_NE((*unknown)["error"].get<std::string>().find("known: count"), std::string::npos);
  auto not_object = control_request(path, nlohmann::json::array({1, 2}), nullptr);
  ASSERT_TRUE(not_object);
  EXPECT_EQ((*not_object)["ok"], false);
  (*server)->stop();
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

TEST(ControlServer, RefusesOverlongRequests) {
  const std::string path = temp_dir() + "/s.sock";
  auto server = ControlServer::create(path);
  ASSERT_TRUE(server);
  (*server)->start();
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  std::string junk(kMaxControlRequestBytes + 4096, 'x');
  ASSERT_GT(send(fd, junk.data(), junk.size(), MSG_NOSIGNAL), 0);
  char buf[256] = {};
  ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
  ASSERT_GT(n, 0);
  EXPECT_NE(std::string(buf).find("too long"), std::string::npos) << buf;
  close(fd);
}

TEST(ControlServer, RefusesDangerousPaths) {
  const std::string dir = temp_dir();
  ASSERT_EQ(symlink("/tmp/elsewhere", (dir + "/link.sock").c_str()), 0);
  auto link = ControlServer::create(dir + "/link.sock");
  ASSERT_FALSE(link);
  EXPECT_NE(link.error().message().find("symlink"), std::string::npos);
  {
    FILE* f = fopen((dir + "/file").c_str(), "w");
    fclose(f);
  }
  EXPECT_FALSE(ControlServer::create(dir + "/file")) << "not a socket";
  const std::string open_dir = temp_dir();
  chmod(open_dir.c_str(), 0777);
  auto open = ControlServer::create(open_dir + "/s.sock");
  ASSERT_FALSE(open);
  EXPECT_NE(open.error().message().find("world-writable"), std::string::npos);
  EXPECT_FALSE(ControlServer::create(std::string(200, 'a'))) << "longer than sun_path";
  // A live socket is not stolen; a stale one is replaced.
  const std::string live = dir + "/live.sock";
  auto first = ControlServer::create(live);
  ASSERT_TRUE(first);
  (*first)->start();
  EXPECT_FALSE(ControlServer::create(live));
}

}  // namespace
}  // namespace ferry::vmm

namespace ferry::vmm {
namespace {

// Commands run one at a time: while a long one (a migration) runs, another request gets
// an immediate refusal naming it, and a second "migrate" is refused outright.
TEST(ControlServer, RefusesASecondCommandWhileOneRuns) {
  const std::string path = temp_dir() + "/busy.sock";
  auto server = ControlServer::create(path);
  ASSERT_TRUE(server) << server.error().message();
  std::promise<void> started, release;
  std::shared_future<void> released = release.get_future().share();
  (*server)->on("migrate", [&](const nlohmann::json&, ControlResponder&) {
    started.set_value();
    released.wait();
    return nlohmann::json{{"ok", true}};
  });
  (*server)->on("status", [](const nlohmann::json&, ControlResponder&) {
    return nlohmann::json{{"ok", true}};
  });
  (*server)->start();
  auto first = std::async(std::launch::async,
                          [&] { return control_request(path, {{"cmd", "migrate"}}, nullptr); });
  started.get_future().wait();
  auto second = control_request(path, {{"cmd", "migrate"}}, nullptr, 2000);
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ((*second)["ok"], false);
  EXPECT_NE((*second)["error"].get<std::string>().find("already running"), std::string::npos)
      << second->dump();
  auto status = control_request(path, {{"cmd", "status"}}, nullptr, 2000);
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ((*status)["ok"], false);
  EXPECT_NE((*status)["error"].get<std::string>().find("busy: 'migrate'"), std::string::npos)
      << status->dump();
  release.set_value();
  auto done = first.get();
  ASSERT_TRUE(done) << done.error().message();
  EXPECT_EQ((*done)["ok"], true);
  // Once it ended, the next command runs.
  auto after = control_request(path, {{"cmd", "status"}}, nullptr, 2000);
  ASSERT_TRUE(after);
  EXPECT_EQ((*after)["ok"], true);
  (*server)->stop();
}

}  // namespace
}  // namespace ferry::vmm
