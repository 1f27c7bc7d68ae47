// VirtioBlock end to end through MMIO and guest RAM: I/O round trips against the image
// file, every malformed request, image-open errors, fault injection, dirty tracking of
// disk blocks and of guest pages the device wrote, quiesce with requests in flight.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "virtio_harness.h"

namespace ferry::vmm::test {
namespace {

constexpr uint64_t kImageSize = 4 << 20;

class VirtioBlockTest : public ::testing::Test {
 protected:
  void SetUp() override { open_device(BlockConfig{image_.path()}); }
  void open_device(const BlockConfig& config) {
    drv_.reset();
    dev_.reset();
    auto dev = VirtioBlock::create(ram_.mem(), irq_, config);
    ASSERT_TRUE(dev.has_value()) << dev.error().message();
    dev_ = std::move(*dev);
    drv_ = std::make_unique<GuestDriver>(ram_, dev_->mmio());
    ASSERT_TRUE(drv_->init());
  }
  std::vector<uint8_t> file_range(uint64_t offset, uint64_t len) {
    auto all = image_.contents();
    return {all.begin() + static_cast<std::ptrdiff_t>(offset),
            all.begin() + static_cast<std::ptrdiff_t>(offset + len)};
  }
  std::vector<uint8_t> ram_range(uint64_t gpa, uint64_t len) {
    return {ram_.host(gpa), ram_.host(gpa) + len};
  }
  /// Submits a hand-built chain and waits for its used element.
  std::optional<UsedElem> submit(const std::vector<Seg>& segs) {
    const uint16_t head = drv_->add_chain(segs);
    drv_->publish(head);
    drv_->notify();
    return drv_->wait_used();
  }
  void put_header(uint64_t gpa, uint32_t type, uint64_t sector) {
    ram_.put<uint32_t>(gpa, type);
    ram_.put<uint32_t>(gpa + 4, 0);
    ram_.put<uint64_t>(gpa + 8, sector);
  }

  GuestRam ram_;
  FakeIrq irq_;
  TempImage image_{kImageSize};
  std::unique_ptr<VirtioBlock> dev_;
  std::unique_ptr<GuestDriver> drv_;
};

TEST_F(VirtioBlockTest, WriteReadFlushGetIdRoundTrip) {
  const auto data = pattern(8192, 3);
  auto w = drv_->write(10, data);
  ASSERT_TRUE(w.completed);
  EXPECT_EQ(w.status, kVirtioBlkSOk);
  EXPECT_EQ(w.used_len, 1u);
  EXPECT_EQ(file_range(10 * 512, 8192), data);

  std::memset(ram_.host(0x40000), 0, 8192);
  auto r = drv_->read(10, 8192, 0x40000);
  ASSERT_TRUE(r.completed);
  EXPECT_EQ(r.status, kVirtioBlkSOk);
  EXPECT_EQ(r.used_len, 8193u);
  EXPECT_EQ(ram_range(0x40000, 8192), data);
  // Untouched sectors still hold what the image had (sector number in byte 0).
  ASSERT_EQ(drv_->read(100, 512).status, kVirtioBlkSOk);
  EXPECT_EQ(ram_.get<uint8_t>(kDataGpa), 100);

  auto f = drv_->run(kVirtioBlkTFlush, 0, 0, 0);
  ASSERT_TRUE(f.completed);
  EXPECT_EQ(f.status, kVirtioBlkSOk);

  auto id = drv_->run(kVirtioBlkTGetId, 0, 0x50000, 20);
  ASSERT_TRUE(id.completed);
  EXPECT_EQ(id.status, kVirtioBlkSOk);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(ram_.host(0x50000))), "ferry-vblk");

  const auto s = dev_->stats();
  EXPECT_EQ(s.writes, 1u);
  EXPECT_EQ(s.reads, 2u);
  EXPECT_EQ(s.flushes, 1u);
  EXPECT_EQ(s.get_ids, 1u);
  EXPECT_EQ(s.bytes_written, 8192u);
  EXPECT_EQ(s.io_errors, 0u);
  EXPECT_EQ(s.requests, 5u);
  EXPECT_EQ(s.popped, s.requests);  // nothing in flight
}

TEST_F(VirtioBlockTest, ScatteredBuffersAndAnyLayout) {
  // Header split over two descriptors, data in three pieces, status sharing the last
  // writable descriptor: virtio 1.x lets the driver frame requests any way it likes.
  put_header(0x9000, kVirtioBlkTOut, 20);
  const auto data = pattern(1536, 9);
  std::memcpy(ram_.host(0x60000), data.data(), 512);
  std::memcpy(ram_.host(0x70000), data.data() + 512, 1024);
  ram_.put<uint8_t>(0x9100, 0xff);
  auto used = submit({{0x9000, 10, false},
                      {0x900a, 6, false},
                      {0x60000, 512, false},
                      {0x70000, 1024, false},
                      {0x9100, 1, true}});
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(ram_.get<uint8_t>(0x9100), kVirtioBlkSOk);
  EXPECT_EQ(file_range(20 * 512, 1536), data);

  put_header(0x9000, kVirtioBlkTIn, 20);
  std::memset(ram_.host(0x80000), 0, 0x3000);
  used = submit({{0x9000, 16, false}, {0x80000, 1000, true}, {0x82000, 537, true}});
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->len, 1537u);
  EXPECT_EQ(ram_.get<uint8_t>(0x82000 + 536), kVirtioBlkSOk);  // status = last byte
  std::vector<uint8_t> got = ram_range(0x80000, 1000);
  auto tail = ram_range(0x82000, 536);
  got.insert(got.end(), tail.begin(), tail.end());
  EXPECT_EQ(got, data);
}

TEST_F(VirtioBlockTest, ManyRequestsInFlightMatchAModel) {
  std::vector<uint8_t> model = image_.contents();
  std::mt19937 rng(42);
  const uint16_t depth = 20;  // 3 descriptors each: fits the 64-entry queue
  for (int round = 0; round < 8; ++round) {
    struct Pending {
      uint16_t head;
      uint64_t status_gpa, data_gpa, sector;
      uint32_t len;
      bool is_read;
    };
    std::vector<Pending> pending;
    for (uint16_t i = 0; i < depth; ++i) {
      const uint64_t sector = (rng() % (kImageSize / 512 - 16)) & ~7ull;  // 4 KiB aligned
      const uint32_t len = 512 * (1 + rng() % 8);
      const bool is_read = rng() % 2 == 0;
      const uint64_t data_gpa = kDataGpa + 0x1000ull * i;
      if (!is_read) {
        // Writes never overlap another request of the same round (no ordering between them).
        bool overlaps = false;
        for (const Pending& p : pending) {
          overlaps |= sector < p.sector + p.len / 512 + 8 && p.sector < sector + len / 512 + 8;
        }
        if (overlaps) {
          continue;
        }
        auto data = pattern(len, static_cast<uint8_t>(round * 50 + i));
        std::memcpy(ram_.host(data_gpa), data.data(), len);
      }
      const uint16_t head = drv_->add_request(is_read ? kVirtioBlkTIn : kVirtioBlkTOut, sector,
                                              data_gpa, len, is_read);
      pending.push_back({head, kStatusGpa + head, data_gpa, sector, len, is_read});
      drv_->publish(head);
    }
    drv_->notify();
    for (size_t i = 0; i < pending.size(); ++i) {
      ASSERT_TRUE(drv_->wait_used().has_value());
    }
    for (const Pending& p : pending) {
      ASSERT_EQ(ram_.get<uint8_t>(p.status_gpa), kVirtioBlkSOk);
      if (!p.is_read) {
        std::memcpy(model.data() + p.sector * 512, ram_.host(p.data_gpa), p.len);
      }
    }
    for (const Pending& p : pending) {
      if (p.is_read) {
        // Reads race writes of the same round only where they overlap; compare the rest.
        bool raced = false;
        for (const Pending& q : pending) {
          raced |=
              !q.is_read && p.sector < q.sector + q.len / 512 && q.sector < p.sector + p.len / 512;
        }
        if (!raced) {
          EXPECT_EQ(0, std::memcmp(ram_.host(p.data_gpa), model.data() + p.sector * 512, p.len));
        }
      }
    }
  }
  EXPECT_EQ(image_.contents(), model);
}

TEST_F(VirtioBlockTest, SectorBoundsAreChecked) {
  const uint64_t sectors = kImageSize / 512;
  EXPECT_EQ(drv_->read(sectors - 1, 512).status, kVirtioBlkSOk);      // last sector
  EXPECT_EQ(drv_->read(sectors - 1, 1024).status, kVirtioBlkSIoErr);  // runs past end
  EXPECT_EQ(drv_->read(sectors, 512).status, kVirtioBlkSIoErr);
  EXPECT_EQ(drv_->write(sectors, pattern(512, 1)).status, kVirtioBlkSIoErr);
  // Sector numbers that overflow when multiplied or added must not wrap into range.
  EXPECT_EQ(drv_->read(~0ull, 512).status, kVirtioBlkSIoErr);
  EXPECT_EQ(drv_->read(~0ull / 512 + 1, 512).status, kVirtioBlkSIoErr);
  EXPECT_EQ(drv_->write(~0ull - 1, pattern(1024, 1)).status, kVirtioBlkSIoErr);
  // Data length not a multiple of the sector size.
  EXPECT_EQ(drv_->read(0, 100).status, kVirtioBlkSIoErr);
  EXPECT_EQ(drv_->write(0, pattern(513, 1)).status, kVirtioBlkSIoErr);
  // The image is untouched by all of that.
  TempImage fresh(kImageSize);
  EXPECT_EQ(image_.contents(), fresh.contents());
  EXPECT_EQ(dev_->stats().io_errors, 8u);
}

TEST_F(VirtioBlockTest, MalformedRequestsFailAlone) {
  // Unknown request type: UNSUPP.
  EXPECT_EQ(drv_->run(0x77, 0, 0, 0).status, kVirtioBlkSUnsupp);
  // Header shorter than 16 bytes.
  put_header(0x9000, kVirtioBlkTIn, 0);
  ram_.put<uint8_t>(0x9100, 0xff);
  auto used = submit({{0x9000, 8, false}, {0x9100, 1, true}});
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(ram_.get<uint8_t>(0x9100), kVirtioBlkSIoErr);
  // Read-only status descriptor: nowhere to report, used length 0, RAM untouched.
  put_header(0x9000, kVirtioBlkTIn, 0);
  ram_.put<uint8_t>(0x9100, 0xab);
  used = submit({{0x9000, 16, false}, {kDataGpa, 512, false}, {0x9100, 1, false}});
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->len, 0u);
  EXPECT_EQ(ram_.get<uint8_t>(0x9100), 0xab);
  // A read whose data buffer is device-readable (wrong direction): IOERR.
  ram_.put<uint8_t>(0x9100, 0xff);
  used = submit({{0x9000, 16, false}, {kDataGpa, 512, false}, {0x9100, 1, true}});
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(ram_.get<uint8_t>(0x9100), kVirtioBlkSIoErr);
  // A write with extra writable bytes before the status: IOERR, file untouched.
  put_header(0x9000, kVirtioBlkTOut, 0);
  ram_.put<uint8_t>(0x9100, 0xff);
  used = submit({{0x9000, 16, false}, {kDataGpa, 512, true}, {0x9100, 1, true}});
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(ram_.get<uint8_t>(0x9100), kVirtioBlkSIoErr);
  // The device still serves good requests afterwards.
  EXPECT_EQ(drv_->read(0, 512).status, kVirtioBlkSOk);
  EXPECT_EQ(dev_->stats().bad_chains, 1u);
}

TEST_F(VirtioBlockTest, BadChainsCompleteWithZeroLengthAndDeviceContinues) {
  // Loop: 0 -> 1 -> 0.
  drv_->put_desc(0, 0x9000, 16, kVirtqDescFNext, 1);
  drv_->put_desc(1, 0x9100, 1, kVirtqDescFNext, 0);
  drv_->publish(0);
  // Next index out of range.
  drv_->put_desc(2, 0x9000, 16, kVirtqDescFNext, 999);
  drv_->publish(2);
  // Buffer outside RAM.
  drv_->put_desc(3, kRamSize - 4, 16, 0, 0);
  drv_->publish(3);
  // Huge length.
  drv_->put_desc(4, 0x9000, 0xffff'fff0u, 0, 0);
  drv_->publish(4);
  // Indirect (not negotiated).
  drv_->put_desc(5, 0x9000, 64, kVirtqDescFIndirect, 0);
  drv_->publish(5);
  drv_->notify();
  for (uint16_t head : {0, 2, 3, 4, 5}) {
    auto used = drv_->wait_used();
    ASSERT_TRUE(used.has_value());
    EXPECT_EQ(used->id, head);
    EXPECT_EQ(used->len, 0u);
  }
  EXPECT_EQ(dev_->stats().bad_chains, 5u);
  EXPECT_EQ(drv_->status() & kVirtioStatusNeedsReset, 0u);
  EXPECT_EQ(drv_->read(3, 512).status, kVirtioBlkSOk);
  EXPECT_EQ(ram_.get<uint8_t>(kDataGpa), 3);
}

TEST_F(VirtioBlockTest, BrokenAvailRingSetsNeedsResetUntilReset) {
  ram_.put<uint16_t>(kAvailGpa + 4, 4000);  // head >= queue size
  drv_->set_avail_idx(1);
  drv_->notify();
  ASSERT_TRUE(eventually([&] { return (drv_->status() & kVirtioStatusNeedsReset) != 0; }));
  EXPECT_TRUE(eventually([&] { return irq_.level(); }));
  EXPECT_EQ(drv_->read32(virtio_mmio_reg::kInterruptStatus), kVirtioInterruptConfigChange);
  EXPECT_EQ(dev_->stats().queue_errors, 1u);
  // Avail idx far ahead of the device: same.
  ASSERT_TRUE(drv_->init());
  drv_->set_avail_idx(1000);
  drv_->notify();
  ASSERT_TRUE(eventually([&] { return (drv_->status() & kVirtioStatusNeedsReset) != 0; }));
  ASSERT_TRUE(drv_->init());
  EXPECT_EQ(drv_->read(7, 512).status, kVirtioBlkSOk);
}

TEST_F(VirtioBlockTest, ReadOnlyImages) {
  open_device(BlockConfig{image_.path(), /*read_only=*/true});
  EXPECT_TRUE(dev_->read_only());
  EXPECT_NE(drv_->features() & kVirtioBlkFRo, 0u);
  EXPECT_EQ(drv_->write(0, pattern(512, 5)).status, kVirtioBlkSIoErr);
  EXPECT_EQ(drv_->read(0, 512).status, kVirtioBlkSOk);
  EXPECT_EQ(file_range(0, 512), TempImage(512).contents());
  EXPECT_FALSE(dev_->write_at(0, pattern(512, 5)).has_value());

  // A file the VMM may not write is served read-only instead of refused.
  if (::geteuid() != 0) {
    ::chmod(image_.path().c_str(), 0444);
    open_device(BlockConfig{image_.path()});
    EXPECT_TRUE(dev_->read_only());
    EXPECT_NE(drv_->features() & kVirtioBlkFRo, 0u);
    ::chmod(image_.path().c_str(), 0644);
  }
}

TEST(VirtioBlockOpen, BadImagesFailClearly) {
  GuestRam ram;
  FakeIrq irq;
  auto expect_error = [&](const std::string& path, const std::string& words) {
    auto dev = VirtioBlock::create(ram.mem(), irq, BlockConfig{path});
    ASSERT_FALSE(dev.has_value()) << path;
    EXPECT_EQ(dev.error().errc, VmmErrc::OpenDisk);
    EXPECT_NE(dev.error().message().find(words), std::string::npos) << dev.error().message();
    EXPECT_NE(dev.error().message().find(path), std::string::npos) << dev.error().message();
  };
  expect_error("/nonexistent/ferry/disk.img", "no such file");
  const auto dir = std::filesystem::temp_directory_path();
  expect_error(dir.string(), "directory");
  TempImage empty(0);
  expect_error(empty.path(), "size 0");
  TempImage odd(1000);
  expect_error(odd.path(), "size 1000");
  expect_error("/dev/null", "not a regular file");
  TempImage ok(4096);
  BlockConfig bad_queue{ok.path()};
  bad_queue.queue_size = 100;
  auto dev = VirtioBlock::create(ram.mem(), irq, bad_queue);
  ASSERT_FALSE(dev.has_value());
  EXPECT_EQ(dev.error().errc, VmmErrc::BadConfig);
}

TEST_F(VirtioBlockTest, FaultInjectionEioRangeAndLatency) {
  BlockFaultInjection faults;
  faults.eio_first_sector = 100;
  faults.eio_sector_count = 10;
  dev_->set_fault_injection(faults);
  EXPECT_EQ(drv_->read(99, 512).status, kVirtioBlkSOk);
  EXPECT_EQ(drv_->read(99, 1024).status, kVirtioBlkSIoErr);  // touches sector 100
  EXPECT_EQ(drv_->write(109, pattern(512, 1)).status, kVirtioBlkSIoErr);
  EXPECT_EQ(drv_->read(110, 512).status, kVirtioBlkSOk);
  EXPECT_EQ(drv_->run(kVirtioBlkTFlush, 0, 0, 0).status, kVirtioBlkSOk);
  // Migration reads are not affected by guest fault injection.
  std::vector<uint8_t> buf(512);
  EXPECT_TRUE(dev_->read_at(100 * 512, buf).has_value());

  faults = {};
  faults.latency = std::chrono::milliseconds(30);
  dev_->set_fault_injection(faults);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(drv_->read(100, 512).status, kVirtioBlkSOk);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(30));
}

TEST_F(VirtioBlockTest, DirtyBlockBitmapTracksGuestWritesOnly) {
  EXPECT_EQ(dev_->tracking_block_size(), 65536u);
  EXPECT_EQ(dev_->size_bytes(), kImageSize);
  // Before tracking starts nothing is recorded.
  ASSERT_EQ(drv_->write(0, pattern(512, 1)).status, kVirtioBlkSOk);
  ASSERT_TRUE(dev_->start_dirty_tracking().has_value());
  migration::DirtyBitmap bitmap;
  ASSERT_TRUE(dev_->harvest_dirty(bitmap).has_value());
  ASSERT_EQ(bitmap.size(), 1u);  // 64 blocks of 64 KiB
  EXPECT_EQ(bitmap[0], 0u);

  ASSERT_EQ(drv_->write(3 * 128 + 1, pattern(512, 2)).status, kVirtioBlkSOk);     // block 3
  ASSERT_EQ(drv_->write(6 * 128 - 1, pattern(1024, 3)).status, kVirtioBlkSOk);    // blocks 5,6
  ASSERT_EQ(drv_->write(63 * 128 + 127, pattern(512, 4)).status, kVirtioBlkSOk);  // last
  ASSERT_EQ(drv_->read(10 * 128, 4096).status, kVirtioBlkSOk);       // reads never mark
  ASSERT_EQ(drv_->write(1, pattern(512, 5)).status, kVirtioBlkSOk);  // block 0
  bitmap.assign(1, 0);
  ASSERT_TRUE(dev_->harvest_dirty(bitmap).has_value());
  EXPECT_EQ(bitmap[0], (1ull << 0) | (1ull << 3) | (1ull << 5) | (1ull << 6) | (1ull << 63));
  // Harvest clears; a second harvest ORs nothing new into the caller's map.
  ASSERT_TRUE(dev_->harvest_dirty(bitmap).has_value());
  migration::DirtyBitmap again(1, 0);
  ASSERT_TRUE(dev_->harvest_dirty(again).has_value());
  EXPECT_EQ(again[0], 0u);
  // A failed (fault-injected) write still marks its blocks: it may have written some.
  BlockFaultInjection faults;
  faults.eio_first_sector = 20 * 128;
  faults.eio_sector_count = 1;
  dev_->set_fault_injection(faults);
  ASSERT_EQ(drv_->write(20 * 128, pattern(512, 6)).status, kVirtioBlkSIoErr);
  ASSERT_TRUE(dev_->harvest_dirty(again).has_value());
  EXPECT_EQ(again[0], 1ull << 20);
  // After stop, writes are not recorded.
  ASSERT_TRUE(dev_->stop_dirty_tracking().has_value());
  ASSERT_EQ(drv_->write(30 * 128, pattern(512, 7)).status, kVirtioBlkSOk);
  again.assign(1, 0);
  ASSERT_TRUE(dev_->harvest_dirty(again).has_value());
  EXPECT_EQ(again[0], 0u);
}

TEST_F(VirtioBlockTest, DeviceWritesToGuestRamAreVmmDirty) {
  // Page layout: desc 1, avail 3, used 4, headers 8, status 10, data 0x40..0x42.
  (void)ram_.take_vmm_dirty();
  ASSERT_EQ(drv_->read(0, 3 * 4096, 0x40000).status, kVirtioBlkSOk);
  auto dirty = ram_.take_vmm_dirty();
  EXPECT_TRUE(dirty[0x40]);
  EXPECT_TRUE(dirty[0x41]);
  EXPECT_TRUE(dirty[0x42]);
  EXPECT_FALSE(dirty[0x43]);
  EXPECT_TRUE(dirty[kUsedGpa / 4096]);    // used ring
  EXPECT_TRUE(dirty[kStatusGpa / 4096]);  // status byte
  EXPECT_FALSE(dirty[kDescGpa / 4096]);   // only the driver writes these
  EXPECT_FALSE(dirty[kAvailGpa / 4096]);
  EXPECT_FALSE(dirty[kHeaderGpa / 4096]);
  // A write request makes the device write only the status byte and the used ring.
  ASSERT_EQ(drv_->write(0, pattern(4096, 1), 0x50000).status, kVirtioBlkSOk);
  dirty = ram_.take_vmm_dirty();
  EXPECT_FALSE(dirty[0x50]);
  EXPECT_TRUE(dirty[kUsedGpa / 4096]);
  EXPECT_TRUE(dirty[kStatusGpa / 4096]);
}

TEST_F(VirtioBlockTest, MigrationReadWriteAtAndFlush) {
  const auto data = pattern(65536, 8);
  ASSERT_TRUE(dev_->write_at(65536, data).has_value());
  ASSERT_TRUE(dev_->flush().has_value());
  EXPECT_EQ(file_range(65536, 65536), data);
  std::vector<uint8_t> back(65536);
  ASSERT_TRUE(dev_->read_at(65536, back).has_value());
  EXPECT_EQ(back, data);
  // The guest sees what the migration wrote.
  ASSERT_EQ(drv_->read(128, 512).status, kVirtioBlkSOk);
  EXPECT_EQ(ram_range(kDataGpa, 512), std::vector<uint8_t>(data.begin(), data.begin() + 512));
  // Out of range is an error, not a short read.
  EXPECT_FALSE(dev_->read_at(kImageSize - 512, back).has_value());
  EXPECT_FALSE(dev_->write_at(kImageSize, std::span(data).first(1)).has_value());
}

TEST_F(VirtioBlockTest, QuiesceWaitsForInFlightRequestsAndHoldsNewOnes) {
  BlockFaultInjection faults;
  faults.latency = std::chrono::milliseconds(150);
  dev_->set_fault_injection(faults);
  const uint16_t head = drv_->add_request(kVirtioBlkTOut, 5, kDataGpa, 512, false);
  std::memcpy(ram_.host(kDataGpa), pattern(512, 9).data(), 512);
  drv_->publish(head);
  drv_->notify();
  ASSERT_TRUE(eventually([&] { return dev_->stats().popped == 1; }));  // in flight now
  EXPECT_EQ(drv_->used_idx(), 0);
  dev_->quiesce();
  // quiesce() returned only after the in-flight write completed and was put on the ring.
  EXPECT_EQ(drv_->used_idx(), 1);
  EXPECT_EQ(file_range(5 * 512, 512), pattern(512, 9));
  EXPECT_TRUE(dev_->quiesced());
  ASSERT_TRUE(drv_->wait_used().has_value());

  // New requests wait while quiesced...
  dev_->set_fault_injection({});
  const uint16_t head2 = drv_->add_request(kVirtioBlkTIn, 5, kDataGpa + 0x1000, 512, true);
  drv_->publish(head2);
  drv_->notify();
  EXPECT_FALSE(drv_->wait_used(std::chrono::milliseconds(100)).has_value());
  dev_->quiesce();  // idempotent
  // ...and run on resume.
  dev_->resume();
  EXPECT_FALSE(dev_->quiesced());
  auto used = drv_->wait_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->id, head2);
  EXPECT_EQ(ram_range(kDataGpa + 0x1000, 512), pattern(512, 9));
}

TEST_F(VirtioBlockTest, DestructionWithRequestsInFlightIsClean) {
  BlockFaultInjection faults;
  faults.latency = std::chrono::milliseconds(50);
  dev_->set_fault_injection(faults);
  for (int i = 0; i < 8; ++i) {
    drv_->publish(drv_->add_request(kVirtioBlkTIn, i, kDataGpa + 0x1000ull * i, 512, true));
  }
  drv_->notify();
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  drv_.reset();
  dev_.reset();  // joins the worker after its batch
  SUCCEED();
}

}  // namespace
}  // namespace ferry::vmm::test

namespace ferry::vmm::test {
namespace {

TEST_F(VirtioBlockTest, NotifyNeverWaitsForTheDisk) {
  BlockFaultInjection faults;
  faults.latency = std::chrono::milliseconds(500);
  dev_->set_fault_injection(faults);
  drv_->publish(drv_->add_request(kVirtioBlkTIn, 0, kDataGpa, 512, true));
  const auto t0 = std::chrono::steady_clock::now();
  drv_->notify();  // the vCPU's MMIO write
  drv_->publish(drv_->add_request(kVirtioBlkTIn, 1, kDataGpa + 4096, 512, true));
  drv_->notify();  // again while the worker is inside the slow batch
  (void)drv_->read32(virtio_mmio_reg::kInterruptStatus);
  const auto vcpu_time = std::chrono::steady_clock::now() - t0;
  // Generous bound for a loaded host; a notify that waited for the disk takes >= 500 ms.
  EXPECT_LT(vcpu_time, std::chrono::milliseconds(250));
  ASSERT_TRUE(drv_->wait_used().has_value());
  ASSERT_TRUE(drv_->wait_used().has_value());
}

// Prints figures (not asserted): 4 KiB random reads and 64 KiB sequential writes through
// the whole path (rings, worker, io_uring, page cache), 16 requests in flight.
TEST_F(VirtioBlockTest, ThroughputFigures) {
  auto measure = [&](uint32_t type, uint32_t len, int total, bool random) {
    std::mt19937 rng(7);
    const int depth = 16;
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t next_sector = 0;
    for (int done = 0; done < total; done += depth) {
      for (int i = 0; i < depth; ++i) {
        uint64_t sector = random ? (rng() % (kImageSize / len)) * (len / 512) : next_sector;
        next_sector = (next_sector + len / 512) % (kImageSize / 512);
        drv_->publish(drv_->add_request(type, sector, kDataGpa + uint64_t{len} * i, len,
                                        type == kVirtioBlkTIn));
      }
      drv_->notify();
      for (int i = 0; i < depth; ++i) {
        if (!drv_->wait_used()) {
          ADD_FAILURE() << "request lost";
          return;
        }
      }
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[ figure ] %s %u B x %d: %.0f req/s, %.1f MiB/s\n",
                type == kVirtioBlkTIn ? "read " : "write", len, total, total / s,
                total * double(len) / s / (1 << 20));
  };
  measure(kVirtioBlkTIn, 4096, 4000, true);
  measure(kVirtioBlkTOut, 65536, 1000, false);
  EXPECT_EQ(dev_->stats().io_errors, 0u);
}

}  // namespace
}  // namespace ferry::vmm::test

namespace ferry::vmm::test {
namespace {

// The migration thread harvests while the guest writes: every block written after
// tracking started must turn up in some harvest (none lost between mark and clear).
TEST_F(VirtioBlockTest, ConcurrentHarvestNeverLosesAWrite) {
  ASSERT_TRUE(dev_->start_dirty_tracking().has_value());
  std::atomic<bool> stop{false};
  migration::DirtyBitmap seen(1, 0);
  std::thread harvester([&] {
    while (!stop.load()) {
      migration::DirtyBitmap round;
      ASSERT_TRUE(dev_->harvest_dirty(round).has_value());
      seen[0] |= round.empty() ? 0 : round[0];
    }
  });
  uint64_t written = 0;
  std::mt19937 rng(3);
  for (int i = 0; i < 300; ++i) {
    const uint64_t block = rng() % 64;
    ASSERT_EQ(drv_->write(block * 128 + rng() % 127, pattern(512, 1)).status, kVirtioBlkSOk);
    written |= 1ull << block;
  }
  stop.store(true);
  harvester.join();
  migration::DirtyBitmap last(1, 0);
  ASSERT_TRUE(dev_->harvest_dirty(last).has_value());
  EXPECT_EQ((seen[0] | last[0]) & written, written);
  EXPECT_EQ((seen[0] | last[0]) & ~written, 0u);
}

}  // namespace
}  // namespace ferry::vmm::test
