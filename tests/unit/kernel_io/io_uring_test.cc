// IoUring against the real kernel ring: probing, SQ exhaustion, file I/O through
// READV/WRITEV/FSYNC and fixed buffers, timeouts, batching, eventfd wake-ups, OpSlab.
#include <gtest/gtest.h>
#include <poll.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "ferry/kernel-interfaces/event_fd.h"
#include "ferry/kernel-interfaces/io_uring.h"
#include "ferry/kernel-interfaces/unique_fd.h"

namespace ferry::kernel {
namespace {

UniqueFd temp_file() {
  int fd = ::memfd_create("ferry-io-uring-test", MFD_CLOEXEC);
  return UniqueFd(fd);
}

TEST(IoUring, CreatesWithBlockAndSocketOpcodes) {
  const int ops[] = {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC, IORING_OP_SEND,
                     IORING_OP_RECV, IORING_OP_SEND_ZC, IORING_OP_ASYNC_CANCEL};
  auto ring = IoUring::create(8, ops);
  ASSERT_TRUE(ring) << ring.error().message();
  EXPECT_GE(ring->fd(), 0);
  EXPECT_GE(ring->entries(), 8u);
}

TEST(IoUring, MissingOpcodeIsNamedInTheError) {
  const int ops[] = {IORING_OP_NOP, 255};
  auto ring = IoUring::create(4, ops);
  ASSERT_FALSE(ring);
  EXPECT_EQ(ring.error().errnum(), EOPNOTSUPP);
  EXPECT_NE(ring.error().message().find("not supported"), std::string::npos);
  EXPECT_STREQ(io_uring_opcode_name(IORING_OP_SEND_ZC), "IORING_OP_SEND_ZC");
  EXPECT_STREQ(io_uring_opcode_name(IORING_OP_READV), "IORING_OP_READV");
}

TEST(IoUring, FullSubmissionQueueIsAnError) {
  auto ring = IoUring::create(4, {});
  ASSERT_TRUE(ring);
  unsigned n = ring->entries();
  for (unsigned i = 0; i < n; ++i) {
    auto sqe = ring->get_sqe();
    ASSERT_TRUE(sqe);
    io_uring_prep_nop(*sqe);
  }
  EXPECT_EQ(ring->sq_space_left(), 0u);
  auto extra = ring->get_sqe();
  ASSERT_FALSE(extra);
  EXPECT_EQ(extra.error().errnum(), EBUSY);
  auto submitted = ring->submit_and_wait(n);
  ASSERT_TRUE(submitted);
  EXPECT_EQ(*submitted, n);
  std::array<Completion, 16> cqes{};
  EXPECT_EQ(ring->peek_batch(cqes), n);
  EXPECT_TRUE(ring->get_sqe());  // space again after the submit
}

TEST(IoUring, NopCompletionsCarrySlabKeys) {
  auto ring = IoUring::create(8, {});
  ASSERT_TRUE(ring);
  OpSlab<int> slab(8);
  std::vector<SlabKey> keys;
  for (int i = 0; i < 5; ++i) {
    auto key = slab.insert(100 + i);
    ASSERT_TRUE(key);
    keys.push_back(*key);
    auto sqe = ring->get_sqe();
    ASSERT_TRUE(sqe);
    io_uring_prep_nop(*sqe);
    io_uring_sqe_set_data64(*sqe, *key);
  }
  ASSERT_TRUE(ring->submit());
  std::vector<int> seen;
  for (int i = 0; i < 5; ++i) {
    auto c = ring->wait();
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->res, 0);
    auto value = slab.take(c->user_data);
    ASSERT_TRUE(value);
    seen.push_back(*value);
  }
  EXPECT_EQ(slab.in_use(), 0u);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<int>{100, 101, 102, 103, 104}));
  // A completion for a slot that has been freed is recognisably stale.
  EXPECT_EQ(slab.get(keys[0]), nullptr);
  EXPECT_FALSE(slab.take(keys[0]));
}

TEST(IoUring, WritevReadvFsyncRoundTrip) {
  const int ops[] = {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC};
  auto ring = IoUring::create(8, ops);
  ASSERT_TRUE(ring);
  UniqueFd file = temp_file();
  ASSERT_TRUE(file.valid());

  std::vector<uint8_t> a(4096, 0xAB), b(8192, 0xCD);
  iovec out[2] = {{a.data(), a.size()}, {b.data(), b.size()}};
  auto sqe = ring->get_sqe();
  ASSERT_TRUE(sqe);
  io_uring_prep_writev(*sqe, file.get(), out, 2, 512);
  (*sqe)->flags |= IOSQE_IO_LINK;  // fsync only after the write completed
  auto fsync = ring->get_sqe();
  ASSERT_TRUE(fsync);
  io_uring_prep_fsync(*fsync, file.get(), 0);
  io_uring_sqe_set_data64(*fsync, 2);
  auto w = ring->wait();
  ASSERT_TRUE(w);
  EXPECT_EQ(w->res, 4096 + 8192);
  auto f = ring->wait();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->user_data, 2u);
  EXPECT_EQ(f->res, 0);

  std::vector<uint8_t> back(4096 + 8192);
  iovec in[1] = {{back.data(), back.size()}};
  auto rsqe = ring->get_sqe();
  ASSERT_TRUE(rsqe);
  io_uring_prep_readv(*rsqe, file.get(), in, 1, 512);
  auto r = ring->wait();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->res, static_cast<int>(back.size()));
  EXPECT_EQ(std::memcmp(back.data(), a.data(), a.size()), 0);
  EXPECT_EQ(std::memcmp(back.data() + a.size(), b.data(), b.size()), 0);
}

TEST(IoUring, RegisteredBuffersServeFixedReadsAndWrites) {
  auto ring = IoUring::create(4, std::array<int, 2>{IORING_OP_READ_FIXED, IORING_OP_WRITE_FIXED});
  ASSERT_TRUE(ring);
  UniqueFd file = temp_file();
  std::vector<uint8_t> wbuf(16384), rbuf(16384);
  for (size_t i = 0; i < wbuf.size(); ++i) {
    wbuf[i] = static_cast<uint8_t>(i * 7);
  }
  iovec bufs[2] = {{wbuf.data(), wbuf.size()}, {rbuf.data(), rbuf.size()}};
  auto reg = ring->register_buffers(bufs);
  ASSERT_TRUE(reg) << reg.error().message();
  auto sqe = ring->get_sqe();
  io_uring_prep_write_fixed(*sqe, file.get(), wbuf.data(), wbuf.size(), 0, 0);
  auto w = ring->wait();
  ASSERT_TRUE(w);
  ASSERT_EQ(w->res, 16384);
  sqe = ring->get_sqe();
  io_uring_prep_read_fixed(*sqe, file.get(), rbuf.data(), rbuf.size(), 0, 1);
  auto r = ring->wait();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->res, 16384);
  EXPECT_EQ(rbuf, wbuf);
  EXPECT_TRUE(ring->unregister_buffers());
  // With nothing registered, a fixed op is refused by the kernel.
  sqe = ring->get_sqe();
  io_uring_prep_read_fixed(*sqe, file.get(), rbuf.data(), rbuf.size(), 0, 1);
  auto bad = ring->wait();
  ASSERT_TRUE(bad);
  EXPECT_LT(bad->res, 0);
}

TEST(IoUring, WaitForTimesOutThenSeesLateCompletion) {
  auto ring = IoUring::create(4, std::array<int, 1>{IORING_OP_POLL_ADD});
  ASSERT_TRUE(ring);
  auto efd = EventFd::create();
  ASSERT_TRUE(efd);
  auto sqe = ring->get_sqe();
  io_uring_prep_poll_add(*sqe, efd->fd(), POLLIN);
  io_uring_sqe_set_data64(*sqe, 42);
  auto start = std::chrono::steady_clock::now();
  auto none = ring->wait_for(std::chrono::milliseconds(30));
  ASSERT_TRUE(none) << none.error().message();
  EXPECT_FALSE(none->has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(25));

  std::thread waker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_TRUE(efd->signal());
  });
  auto got = ring->wait_for(std::chrono::seconds(5));
  waker.join();
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->user_data, 42u);
  EXPECT_TRUE((*got)->res & POLLIN);
  EXPECT_FALSE(ring->peek());
}

TEST(IoUring, CancelReapsAPendingOp) {
  auto ring = IoUring::create(4, std::array<int, 2>{IORING_OP_POLL_ADD, IORING_OP_ASYNC_CANCEL});
  ASSERT_TRUE(ring);
  auto efd = EventFd::create();
  auto sqe = ring->get_sqe();
  io_uring_prep_poll_add(*sqe, efd->fd(), POLLIN);
  io_uring_sqe_set_data64(*sqe, 7);
  ASSERT_TRUE(ring->submit());
  auto cancel = ring->get_sqe();
  io_uring_prep_cancel64(*cancel, 7, 0);
  io_uring_sqe_set_data64(*cancel, 8);
  int seen = 0;
  for (int i = 0; i < 2; ++i) {
    auto c = ring->wait();
    ASSERT_TRUE(c);
    if (c->user_data == 7) {
      EXPECT_EQ(c->res, -ECANCELED);
      seen |= 1;
    } else {
      EXPECT_EQ(c->user_data, 8u);
      EXPECT_EQ(c->res, 0);
      seen |= 2;
    }
  }
  EXPECT_EQ(seen, 3);
}

TEST(IoUring, MoveLeavesAnEmptyRing) {
  auto ring = IoUring::create(4, {});
  ASSERT_TRUE(ring);
  int fd = ring->fd();
  IoUring moved = std::move(*ring);
  EXPECT_EQ(moved.fd(), fd);
  EXPECT_EQ(ring->fd(), -1);  // NOLINT(bugprone-use-after-move)
  EXPECT_FALSE(ring->get_sqe());
  auto sqe = moved.get_sqe();
  ASSERT_TRUE(sqe);
  io_uring_prep_nop(*sqe);
  EXPECT_TRUE(moved.wait());
}

TEST(OpSlab, ExhaustsAndReusesSlotsWithNewGenerations) {
  OpSlab<std::string> slab(2);
  auto a = slab.insert("a");
  auto b = slab.insert("b");
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(slab.insert("c"));
  EXPECT_EQ(*slab.get(*b), "b");
  EXPECT_EQ(*slab.take(*a), "a");
  auto c = slab.insert("c");
  ASSERT_TRUE(c);
  EXPECT_EQ(static_cast<uint32_t>(*c), static_cast<uint32_t>(*a));  // same slot...
  EXPECT_NE(*c, *a);                                                 // ...new generation
  EXPECT_EQ(slab.get(*a), nullptr);
  EXPECT_EQ(slab.get(SlabKey{99}), nullptr);
}

}  // namespace
}  // namespace ferry::kernel
