// Helpers shared by the format loaders (private to vmm/src/boot): bounds-checked reads of
// kernel-file bytes, checked copies into guest RAM, module placement and the multiboot
// information block that both the Ferry64 and the multiboot paths hand over.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>

#include "ferry/vmm/boot/loader.h"

namespace ferry::vmm::boot::detail {

/// Everything a format loader gets. `plan` arrives with tables, e820 and the command line
/// already written; the loader fills in the rest.
struct LoadInput {
  GuestMemory& mem;
  std::span<const uint8_t> kernel;
  std::span<const uint8_t> initrd;
  std::string_view cmdline;
  const BootOptions& options;
};

template <class... Args>
VmmError kernel_error(fmt::format_string<Args...> format, Args&&... args) {
  return vmm_error(VmmErrc::LoadKernel, fmt::format(format, std::forward<Args>(args)...));
}

/// Little-endian T at `offset` of `bytes`, or nullopt if it does not fit.
template <class T>
std::optional<T> read_at(std::span<const uint8_t> bytes, uint64_t offset) {
  static_assert(std::is_trivially_copyable_v<T>);
  if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) {
    return std::nullopt;
  }
  T value;
  // SAFETY: the range [offset, offset + sizeof(T)) was checked to lie inside `bytes`.
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

/// True if [start, start + len) does not wrap and is inside [0, limit).
inline bool fits(uint64_t start, uint64_t len, uint64_t limit) {
  return start <= limit && len <= limit - start;
}

/// Copies `bytes` to guest [gpa, gpa + bytes.size()) and zeroes up to gpa + mem_size,
/// after checking the whole range is RAM at or above kKernelMinAddr. `what` names the
/// piece for the error message.
VmmResult<void> load_segment(GuestMemory& mem, uint64_t gpa, std::span<const uint8_t> bytes,
                             uint64_t mem_size, std::string_view what);

/// Highest page-aligned address a `size`-byte object can take with its end at or below
/// `max_end`, inside the RAM region that holds kKernelMinAddr, and not below `min_addr`.
std::optional<uint64_t> place_high(const GuestMemory& mem, uint64_t min_addr, uint64_t max_end,
                                   uint64_t size);

/// Lowest page-aligned address >= `after` where `size` bytes fit in one RAM region.
std::optional<uint64_t> place_after(const GuestMemory& mem, uint64_t after, uint64_t size);

/// Loads the initrd (if any) as one module right after `kernel_end`; fills plan.initrd_*.
VmmResult<void> load_module_after(const LoadInput& in, BootPlan& plan, uint64_t kernel_end);

/// Writes the multiboot v1 info (memory, cmdline, mmap, loader name and the initrd as
/// module 0 if plan.initrd_size != 0) at kBootInfoAddr.
VmmResult<uint64_t> write_multiboot_info(GuestMemory& mem, const BootPlan& plan);

/// A vCPU state with RIP, RSP, RFLAGS (IF = 0) and the given mode.
VcpuBootState entry_state(uint64_t rip, uint64_t rsp, CpuMode mode);

}  // namespace ferry::vmm::boot::detail
