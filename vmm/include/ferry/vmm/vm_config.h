// VmConfig: everything `ferry run` needs to build a machine. The same struct, encoded,
// travels in a migration hello so the destination rebuilds an identical machine.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ferry/vmm/vmm_error.h"

namespace ferry::vmm {

inline constexpr uint32_t kMaxVcpus = 64;
inline constexpr uint64_t kMinMemoryBytes = 16ull << 20;
inline constexpr uint64_t kMaxMemoryBytes = 1ull << 40;

struct DiskConfig {
  std::string path;
  bool read_only = false;
};

struct VmConfig {
  uint64_t memory_bytes = 256ull << 20;
  uint32_t vcpus = 1;
  std::string kernel_path;
  std::string initrd_path;
  std::string cmdline;
  std::vector<DiskConfig> disks;
  bool hugetlb = false;
  /// Serial output goes to this fd (stdout by default); input is read from serial_in_fd.
  int serial_out_fd = 1;
  int serial_in_fd = -1;
  std::string control_path;
  /// Dirty tracking backend for migrations: 0 = the KVM dirty bitmap (manual protect),
  /// N = per-vCPU dirty rings of N entries (a power of two, KVM_CAP_DIRTY_LOG_RING).
  uint32_t dirty_ring_entries = 0;
  /// The KVM device node (tests point it elsewhere to check the error path).
  std::string kvm_path = "/dev/kvm";
  /// CPUID to give the guest. Empty = derived from KVM_GET_SUPPORTED_CPUID; on a
  /// migration destination it holds the source's table, applied unchanged.
  std::vector<uint8_t> cpuid_blob;
};

/// Parses "512M", "2G", "1048576" (bytes) with overflow checks.
VmmResult<uint64_t> parse_memory_size(const std::string& text);

/// Checks the config for values no machine can have (before touching /dev/kvm).
VmmResult<void> validate_config(const VmConfig& config);

/// Encodes the parts of a config the destination needs (memory, vCPUs, CPUID, disk
/// count and read-only flags, cmdline) for the migration hello.
std::vector<uint8_t> encode_config(const VmConfig& config);
VmmResult<VmConfig> decode_config(std::span<const uint8_t> blob);

}  // namespace ferry::vmm
