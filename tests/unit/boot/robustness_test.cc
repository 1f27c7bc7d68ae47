// Inputs no kernel format accepts, options out of range, and a mutation sweep: thousands
// of corrupted and truncated variants of every synthetic kernel must load or fail
// cleanly, never crash, and never write outside guest RAM (guard bytes around it).
#include <gtest/gtest.h>

#include <random>

#include "ferry/vmm/boot/layout.h"
#include "ferry/vmm/boot/loader.h"
#include "test_images.h"

namespace ferry::vmm::boot {
namespace {

using test::Bytes;
using test::TestRam;

VmmResult<BootPlan> load(TestRam& ram, const Bytes& kernel, std::string_view cmdline = "",
                         uint32_t cpus = 1, KernelFormat format = KernelFormat::Auto) {
  return load_kernel(*ram.mem, kernel, {}, cmdline, BootOptions{format, cpus});
}

TEST(Loader, UnrecognisedAndEmptyKernels) {
  TestRam ram(16 << 20);
  auto empty = load(ram, {});
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().errc, VmmErrc::LoadKernel);
  EXPECT_NE(empty.error().message().find("empty"), std::string::npos);

  Bytes garbage(20000);
  for (size_t i = 0; i < garbage.size(); ++i) {
    garbage[i] = static_cast<uint8_t>(i * 131 + 7);
  }
  auto plan = load(ram, garbage);
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().message().find("unrecognised kernel format"), std::string::npos)
      << plan.error().message();
}

TEST(Loader, ExplicitFormatOverridesDetection) {
  TestRam ram(64 << 20);
  // A Ferry64 image forced through the bzImage loader is rejected by that loader.
  auto plan = load(ram, test::ferry64_image(), "", 1, KernelFormat::BzImage);
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().message().find("bzImage"), std::string::npos) << plan.error().message();
  // A file with both a Ferry64 and a multiboot header: auto picks Ferry64, the override
  // picks multiboot.
  Bytes both = test::multiboot_aout();
  test::put<Ferry64Header>(both, 0x1000, {kFerry64Magic, 0x200100, 0x200000, 0x202000, 0});
  EXPECT_EQ(detect_format(both).value(), KernelFormat::Ferry64);
  auto mb = load(ram, both, "", 1, KernelFormat::Multiboot);
  ASSERT_TRUE(mb) << mb.error().message();
  EXPECT_EQ(mb->format, KernelFormat::Multiboot);
  EXPECT_EQ(mb->vcpus[0].mode, CpuMode::Protected32);
}

TEST(Loader, FormatNamesRoundTrip) {
  for (KernelFormat f : {KernelFormat::Auto, KernelFormat::Ferry64, KernelFormat::Multiboot,
                         KernelFormat::Pvh, KernelFormat::BzImage}) {
    EXPECT_EQ(parse_format(format_name(f)), f);
  }
  EXPECT_FALSE(parse_format("elf"));
}

TEST(Loader, CommandLineLimits) {
  TestRam ram(64 << 20);
  const std::string longest(kCmdlineCapacity - 1, 'x');
  auto ok = load(ram, test::ferry64_image(), longest);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ram.str(kCmdlineAddr), longest);

  auto too_long = load(ram, test::ferry64_image(), longest + "y");
  ASSERT_FALSE(too_long);
  EXPECT_EQ(too_long.error().errc, VmmErrc::BadConfig);
  EXPECT_NE(too_long.error().message().find("too long"), std::string::npos);

  auto nul = load(ram, test::ferry64_image(), std::string_view("a\0b", 3));
  ASSERT_FALSE(nul);
  EXPECT_NE(nul.error().message().find("NUL"), std::string::npos);
}

TEST(Loader, CpuCountAndMemoryPreconditions) {
  TestRam ram(64 << 20);
  EXPECT_FALSE(load(ram, test::ferry64_image(), "", 0));
  EXPECT_FALSE(load(ram, test::ferry64_image(), "", kMaxBootCpus + 1));
  auto max = load(ram, test::ferry64_image(), "", kMaxBootCpus);
  ASSERT_TRUE(max);
  EXPECT_EQ(max->vcpus.size(), kMaxBootCpus);
  EXPECT_LT(max->vcpus.back().regs.rsp, kEbdaStart);

  Bytes small(512 << 10);
  auto mem = GuestMemory::wrap({{0, small.size(), small.data(), 0, 0}});
  auto plan = load_kernel(*mem, test::ferry64_image(), {}, "", {});
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().errc, VmmErrc::BadConfig);
  EXPECT_NE(plan.error().message().find("first MiB"), std::string::npos);
}

// Guest RAM with guard bytes on both sides; any write outside RAM shows up in them.
struct GuardedRam {
  static constexpr size_t kGuard = 4096;
  explicit GuardedRam(uint64_t size) : buf(size + 2 * kGuard, 0x5c) {
    mem = GuestMemory::wrap({{0, size, buf.data() + kGuard, 0, 0}});
  }
  bool guards_intact() const {
    for (size_t i = 0; i < kGuard; ++i) {
      if (buf[i] != 0x5c || buf[buf.size() - 1 - i] != 0x5c) {
        return false;
      }
    }
    return true;
  }
  Bytes buf;
  std::unique_ptr<GuestMemory> mem;
};

TEST(Loader, MutatedKernelsFailCleanly) {
  const std::vector<std::pair<const char*, Bytes>> seeds{
      {"ferry64", test::ferry64_image()},
      {"multiboot-aout", test::multiboot_aout()},
      {"pvh", test::pvh_vmlinux()},
      {"bzimage", test::bzimage()},
  };
  std::mt19937_64 rng(12345);
  // 32 MiB is enough for every seed (bzImage loads at 16 MiB) and keeps each load cheap.
  GuardedRam ram(32 << 20);
  int loaded = 0;
  int failed = 0;
  for (const auto& [name, seed] : seeds) {
    for (int iter = 0; iter < 400; ++iter) {
      Bytes k = seed;
      const int flips = 1 + static_cast<int>(rng() % 8);
      for (int f = 0; f < flips; ++f) {
        const size_t at = rng() % std::min<size_t>(k.size(), 0x300);  // headers live here
        k[at] = static_cast<uint8_t>(rng());
      }
      if (rng() % 4 == 0) {
        k.resize(rng() % k.size());
      }
      auto plan = load_kernel(*ram.mem, k, Bytes(100, 1), "console=ttyS0", {});
      if (plan) {
        ++loaded;
        EXPECT_FALSE(plan->vcpus.empty()) << name;
        EXPECT_GE(plan->kernel_start, kKernelMinAddr) << name;
      } else {
        ++failed;
        EXPECT_FALSE(plan.error().message().empty()) << name;
      }
      ASSERT_TRUE(ram.guards_intact()) << name << " iteration " << iter;
    }
  }
  EXPECT_GT(failed, 0);
  EXPECT_GT(loaded, 0);
}

}  // namespace
}  // namespace ferry::vmm::boot
