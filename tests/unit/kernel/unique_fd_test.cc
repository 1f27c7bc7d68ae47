#include "ferry/kernel-interfaces/unique_fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace ferry::kernel {
namespace {

bool is_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

TEST(UniqueFd, ClosesOnDestructionAndMovesOwnership) {
  int raw = -1;
  {
    auto fd = UniqueFd::open("/dev/null", O_RDONLY);
    ASSERT_TRUE(fd) << fd.error().message();
    raw = fd->get();
    EXPECT_NE(fcntl(raw, F_GETFD) & FD_CLOEXEC, 0) << "every fd is close-on-exec";
    UniqueFd moved = std::move(*fd);
    EXPECT_EQ(fd->get(), -1);  // NOLINT(bugprone-use-after-move): checking the moved-from state
    EXPECT_EQ(moved.get(), raw);
    EXPECT_TRUE(is_open(raw));
  }
  EXPECT_FALSE(is_open(raw));
}

TEST(UniqueFd, OpenFailureNamesTheSyscall) {
  auto fd = UniqueFd::open("/nonexistent/file", O_RDONLY);
  ASSERT_FALSE(fd);
  EXPECT_EQ(fd.error().errnum(), ENOENT);
  EXPECT_NE(fd.error().message().find("open"), std::string::npos);
}

TEST(UniqueFd, ReleaseGivesUpOwnership) {
  auto fd = UniqueFd::open("/dev/null", O_RDONLY);
  ASSERT_TRUE(fd);
  const int raw = fd->release();
  EXPECT_FALSE(fd->valid());
  EXPECT_TRUE(is_open(raw));
  close(raw);
}

TEST(RetryEintr, StopsAfterABoundedNumberOfAttempts) {
  int calls = 0;
  int rc = retry_eintr([&] {
    ++calls;
    errno = EINTR;
    return -1;
  });
  EXPECT_EQ(rc, -1);
  EXPECT_EQ(calls, kMaxEintrRetries);
}

}  // namespace
}  // namespace ferry::kernel
