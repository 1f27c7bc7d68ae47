// EventFd against the real eventfd(2): counting, non-blocking consume, cross-thread wake.
#include <gtest/gtest.h>

#include <chrono>
#include <fcntl.h>
#include <thread>

#include "ferry/kernel-interfaces/event_fd.h"

namespace ferry::kernel {
namespace {

TEST(EventFd, SignalsAccumulateAndConsumeResets) {
  auto efd = EventFd::create();
  ASSERT_TRUE(efd) << efd.error().message();
  ASSERT_TRUE(efd->signal());
  ASSERT_TRUE(efd->signal(4));
  auto got = efd->try_consume();
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, 5u);
  auto empty = efd->try_consume();
  ASSERT_TRUE(empty);
  EXPECT_FALSE(empty->has_value());
}

TEST(EventFd, IsCloexecAndNonBlocking) {
  auto efd = EventFd::create();
  ASSERT_TRUE(efd);
  EXPECT_TRUE(::fcntl(efd->fd(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(efd->fd(), F_GETFL) & O_NONBLOCK);
}

TEST(EventFd, ConsumeTimesOutWhenNothingSignalled) {
  auto efd = EventFd::create();
  ASSERT_TRUE(efd);
  auto start = std::chrono::steady_clock::now();
  auto got = efd->consume(30);
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(25));
}

TEST(EventFd, WakesAnotherThread) {
  auto efd = EventFd::create();
  ASSERT_TRUE(efd);
  std::thread signaller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_TRUE(efd->signal(7));
  });
  auto got = efd->consume(5000);
  signaller.join();
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, 7u);
}

TEST(EventFd, SemaphoreModeTakesOneAtATime) {
  auto efd = EventFd::create_semaphore(2);
  ASSERT_TRUE(efd);
  EXPECT_EQ(**efd->try_consume(), 1u);
  EXPECT_EQ(**efd->try_consume(), 1u);
  EXPECT_FALSE(efd->try_consume()->has_value());
}

TEST(EventFd, MovedFromHoldsNoFd) {
  auto efd = EventFd::create();
  ASSERT_TRUE(efd);
  int fd = efd->fd();
  EventFd moved = std::move(*efd);
  EXPECT_EQ(moved.fd(), fd);
  EXPECT_EQ(efd->fd(), -1);  // NOLINT(bugprone-use-after-move): checking the moved-from state
}

}  // namespace
}  // namespace ferry::kernel
