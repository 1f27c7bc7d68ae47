// Writes the generated part of the seed corpora into tests/fuzz/corpus/ (the others are
// hand-made or copied, see tools/scripts/fuzz.sh --make-seeds): whole migration streams
// captured from fake-VM migrations (receiver), synthetic kernels of every format (boot),
// and well-formed virtio rings and driver init sequences (virtqueue, virtio_mmio).
// Usage: fuzz_make_seeds <corpus dir>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "fakes/fake_vm.h"
#include "fakes/mem_stream.h"
#include "ferry/migration/receiver.h"
#include "ferry/migration/sender.h"
#include "ferry/vmm/devices/virtio_mmio.h"
#include "test_images.h"

namespace {

using Bytes = std::vector<uint8_t>;

void save(const std::string& path, const Bytes& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  std::printf("%s: %zu bytes\n", path.c_str(), bytes.size());
}

template <class T>
void le(Bytes& b, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) {
    b.push_back(static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * i)));
  }
}
template <class T>
void put(Bytes& b, size_t off, T v) {
  if (b.size() < off + sizeof(T)) {
    b.resize(off + sizeof(T));
  }
  for (size_t i = 0; i < sizeof(T); ++i) {
    b[off + i] = static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * i));
  }
}

// ---- receiver: what the source sent on channel 0 of a successful migration -----------
Bytes capture_migration(const ferry::testing::FakeVmConfig& config,
                        ferry::migration::CompressionSpec::Mode mode) {
  using namespace ferry;
  testing::FakeVm source(config);
  for (uint64_t page = 0; page < 4; ++page) {
    source.guest_write_page(page * 2, 0x1000 + page);  // 8 pages in each seed VM
  }
  testing::PipeFaults to_dest;
  to_dest.capture = std::make_shared<Bytes>();
  auto [src, dst] = testing::make_stream_pair(to_dest);
  std::vector<std::unique_ptr<migration::ByteStream>> out, in;
  out.push_back(std::move(src));
  in.push_back(std::move(dst));
  auto factory = testing::fake_factory(std::make_shared<std::atomic<int>>(0));
  std::optional<Result<migration::ReceivedVm, migration::MigrationError>> received;
  std::thread dest([&] { received.emplace(migration::migrate_in(std::move(in), factory, {})); });
  migration::SenderOptions options;
  options.compression.mode = mode;
  auto report = migration::migrate_out(source, std::move(out), options, {});
  dest.join();
  if (!report || !*received) {
    std::fprintf(stderr, "seed migration failed\n");
    std::exit(1);
  }
  return *to_dest.capture;
}

// ---- boot: {format, cpus, cmdline length, cmdline, initrd length u16, initrd, kernel} ---
Bytes boot_seed(uint8_t format, const Bytes& kernel, const std::string& cmdline, size_t initrd) {
  Bytes b{format, 2, static_cast<uint8_t>(cmdline.size())};
  b.insert(b.end(), cmdline.begin(), cmdline.end());
  le<uint16_t>(b, static_cast<uint16_t>(initrd));
  b.insert(b.end(), initrd, 0x17);
  b.insert(b.end(), kernel.begin(), kernel.end());
  return b;
}

// ---- virtio: a queue of 8 at desc 0x0, avail 0x1000, used 0x2000, and three chains -----
constexpr uint64_t kDesc = 0x0, kAvail = 0x1000, kUsed = 0x2000;
Bytes ring_ram() {
  Bytes ram(0x3000, 0);
  auto desc = [&](uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    put<uint64_t>(ram, kDesc + 16 * i, addr);
    put<uint32_t>(ram, kDesc + 16 * i + 8, len);
    put<uint16_t>(ram, kDesc + 16 * i + 12, flags);
    put<uint16_t>(ram, kDesc + 16 * i + 14, next);
  };
  // A block request: header (read), data (write), status (write).
  desc(0, 0x4000, 16, ferry::vmm::kVirtqDescFNext, 1);
  desc(1, 0x5000, 512, ferry::vmm::kVirtqDescFNext | ferry::vmm::kVirtqDescFWrite, 2);
  desc(2, 0x6000, 1, ferry::vmm::kVirtqDescFWrite, 0);
  desc(3, 0x7000, 4096, 0, 0);                               // one readable buffer
  desc(4, 0x100000, 4096, ferry::vmm::kVirtqDescFWrite, 0);  // in the high region
  put<uint16_t>(ram, kAvail + 4, 0);
  put<uint16_t>(ram, kAvail + 6, 3);
  put<uint16_t>(ram, kAvail + 8, 4);
  put<uint16_t>(ram, kAvail + 2, 3);  // avail->idx
  return ram;
}

// `last_avail` != 0 is a queue restored mid-stream (indices wrap at 2^16).
Bytes virtqueue_seed(Bytes ram, uint16_t last_avail = 0) {
  Bytes b;
  le<uint16_t>(b, 3);  // 1 << 3 = 8 entries
  le<uint32_t>(b, kDesc);
  le<uint32_t>(b, kAvail);
  le<uint16_t>(b, kUsed);
  le<uint16_t>(b, last_avail);
  le<uint8_t>(b, 0);  // default chain cap
  b.insert(b.end(), ram.begin(), ram.end());
  return b;
}

// A chain whose next fields loop (0 -> 1 -> 0), the walker must stop at the queue size.
Bytes loop_ram() {
  Bytes ram = ring_ram();
  put<uint16_t>(ram, kDesc + 16 * 2 + 12,
                ferry::vmm::kVirtqDescFNext | ferry::vmm::kVirtqDescFWrite);
  put<uint16_t>(ram, kDesc + 16 * 2 + 14, 0);
  return ram;
}

// Avail ring idx just past a wrap: last_avail 0xfffe, idx 1 -> three chains pending.
Bytes wrapped_ram() {
  Bytes ram = ring_ram();
  put<uint16_t>(ram, kAvail + 2, 1);
  return ram;
}

// `migrate`: instead of resetting at the end, save and restore the transport (op kind
// 0x71 is a 4-byte write that also does that) and notify again.
Bytes mmio_seed(bool migrate) {
  using namespace ferry::vmm;
  namespace reg = virtio_mmio_reg;
  Bytes ram = ring_ram();
  Bytes b;
  le<uint16_t>(b, static_cast<uint16_t>(ram.size()));
  b.insert(b.end(), ram.begin(), ram.end());
  auto write = [&](uint64_t off, uint32_t v, uint8_t kind = 1) {
    b.push_back(kind);  // 1: 4-byte write
    le<uint16_t>(b, static_cast<uint16_t>(off));
    le<uint32_t>(b, v);
  };
  auto read = [&](uint64_t off) {
    b.push_back(0);
    le<uint16_t>(b, static_cast<uint16_t>(off));
    le<uint32_t>(b, 0);
  };
  read(reg::kMagicValue);
  read(reg::kDeviceFeatures);
  write(reg::kStatus, kVirtioStatusAcknowledge);
  write(reg::kStatus, kVirtioStatusAcknowledge | kVirtioStatusDriver);
  write(reg::kDriverFeaturesSel, 1);
  write(reg::kDriverFeatures, 1);  // VIRTIO_F_VERSION_1
  const uint32_t base = kVirtioStatusAcknowledge | kVirtioStatusDriver | kVirtioStatusFeaturesOk;
  write(reg::kStatus, base);
  write(reg::kQueueSel, 0);
  read(reg::kQueueNumMax);
  write(reg::kQueueNum, 8);
  write(reg::kQueueDescLow, kDesc);
  write(reg::kQueueDriverLow, kAvail);
  write(reg::kQueueDeviceLow, kUsed);
  write(reg::kQueueReady, 1);
  write(reg::kStatus, base | kVirtioStatusDriverOk);
  write(reg::kQueueNotify, 0);
  read(reg::kInterruptStatus);
  write(reg::kInterruptAck, 1);
  read(kVirtioMmioConfigOffset);
  if (migrate) {
    write(reg::kQueueNotify, 0, 0x71);
  } else {
    write(reg::kStatus, 0);  // reset
  }
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <tests/fuzz/corpus>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  using ferry::migration::CompressionSpec;
  ferry::testing::FakeVmConfig one;
  one.regions = {{0, 32 << 10}};
  one.vcpus = 1;
  save(dir + "/receiver/zstd_one_region", capture_migration(one, CompressionSpec::Mode::Zstd));
  ferry::testing::FakeVmConfig two = one;
  two.regions = {{0, 16 << 10}, {1 << 20, 16 << 10}};
  two.vcpus = 2;
  two.disk_sizes = {32 << 10};
  two.disk_block = 4096;
  save(dir + "/receiver/raw_two_regions_disk", capture_migration(two, CompressionSpec::Mode::Off));

  namespace t = ferry::vmm::boot::test;
  save(dir + "/boot/ferry64", boot_seed(0, t::ferry64_image(), "console=ttyS0", 0));
  save(dir + "/boot/multiboot_aout", boot_seed(0, t::multiboot_aout(), "mb", 0));
  save(dir + "/boot/pvh", boot_seed(0, t::pvh_vmlinux(), "root=/dev/vda", 64));
  save(dir + "/boot/bzimage", boot_seed(0, t::bzimage(), "console=ttyS0 quiet", 128));

  save(dir + "/virtqueue/three_chains", virtqueue_seed(ring_ram()));
  save(dir + "/virtqueue/looping_chain", virtqueue_seed(loop_ram()));
  save(dir + "/virtqueue/restored_wrapped", virtqueue_seed(wrapped_ram(), 0xfffe));
  save(dir + "/virtio_mmio/init_notify_reset", mmio_seed(false));
  save(dir + "/virtio_mmio/init_notify_migrate", mmio_seed(true));
  return 0;
}
