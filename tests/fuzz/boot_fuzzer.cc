// Fuzzes the kernel loaders (load_kernel: Ferry64, multiboot v1 a.out and ELF32, PVH
// vmlinux, bzImage) with arbitrary kernel and initrd files, command lines and vCPU
// counts. Input: {format u8, cpus u8, cmdline length u8, cmdline, initrd length u16,
// initrd, kernel = the rest}. Guest RAM is 32 MiB (the loaders place PVH and bzImage
// kernels at 16 MiB); the files are copied to buffers of exactly their size so ASan
// catches any read past them.
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "ferry/vmm/boot/loader.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ferry::vmm;
  static constexpr uint64_t kRamSize = 32 << 20;
  static std::vector<uint8_t> ram(kRamSize);  // reused: allocating 32 MiB per run is slow
  static std::unique_ptr<GuestMemory> mem = GuestMemory::wrap({{0, kRamSize, ram.data(), 0, 0}});
  ferry::fuzz::FuzzInput in(data, size);
  boot::BootOptions options;
  options.format = static_cast<boot::KernelFormat>(in.take<uint8_t>() % 5);
  options.cpus = in.take<uint8_t>() % 9;  // 0 and 1..8; the loaders check the range
  const auto cmd = in.bytes(in.take<uint8_t>());
  const std::string_view cmdline(reinterpret_cast<const char*>(cmd.data()), cmd.size());
  const auto initrd_in = in.bytes(in.take<uint16_t>());
  const std::vector<uint8_t> initrd(initrd_in.begin(), initrd_in.end());
  const auto kernel_in = in.rest();
  const std::vector<uint8_t> kernel(kernel_in.begin(), kernel_in.end());
  (void)boot::detect_format(kernel);
  auto plan = boot::load_kernel(*mem, kernel, initrd, cmdline, options);
  if (plan) {
    for (size_t i = 0; i < plan->vcpus.size(); ++i) {
      kvm_sregs sregs{};
      boot::apply_sregs(*plan, i, sregs);
    }
  }
  return 0;
}
