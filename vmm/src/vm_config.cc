#include "ferry/vmm/vm_config.h"

#include <fmt/format.h>

#include <cctype>
#include <limits>

#include "ferry/kernel-interfaces/le_bytes.h"

namespace ferry::vmm {

namespace {
constexpr uint32_t kConfigMagic = 0x46435246;  // "FRCF"
constexpr uint32_t kConfigVersion = 1;
constexpr size_t kMaxCmdline = size_t{64} * 1024;
constexpr size_t kMaxCpuidBlob = 1 << 20;
constexpr uint32_t kMaxDisks = 16;
}  // namespace

VmmResult<uint64_t> parse_memory_size(const std::string& text) {
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) {
    return fail(vmm_error(VmmErrc::BadConfig, fmt::format("bad memory size '{}'", text)));
  }
  size_t pos = 0;
  uint64_t value = 0;
  while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
    const uint64_t digit = static_cast<uint64_t>(text[pos] - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
      return fail(vmm_error(VmmErrc::BadConfig, fmt::format("memory size '{}' overflows", text)));
    }
    value = value * 10 + digit;
    ++pos;
  }
  int shift = 0;
  if (pos < text.size()) {
    switch (std::toupper(static_cast<unsigned char>(text[pos]))) {
      case 'K':
        shift = 10;
        break;
      case 'M':
        shift = 20;
        break;
      case 'G':
        shift = 30;
        break;
      case 'T':
        shift = 40;
        break;
      default:
        return fail(vmm_error(VmmErrc::BadConfig,
                              fmt::format("bad memory size suffix in '{}' (use K, M, G)", text)));
    }
    ++pos;
    if (pos < text.size() && (text[pos] == 'i' || text[pos] == 'B')) {
      ++pos;
    }
    if (pos < text.size() && text[pos] == 'B') {
      ++pos;
    }
  }
  if (pos != text.size()) {
    return fail(vmm_error(VmmErrc::BadConfig, fmt::format("bad memory size '{}'", text)));
  }
  if (shift > 0 && value > (std::numeric_limits<uint64_t>::max() >> shift)) {
    return fail(vmm_error(VmmErrc::BadConfig, fmt::format("memory size '{}' overflows", text)));
  }
  return value << shift;
}

VmmResult<void> validate_config(const VmConfig& config) {
  if (config.memory_bytes < kMinMemoryBytes) {
    return fail(vmm_error(VmmErrc::BadConfig,
                          fmt::format("memory {} MiB is too small (minimum {} MiB)",
                                      config.memory_bytes >> 20, kMinMemoryBytes >> 20)));
  }
  if (config.memory_bytes > kMaxMemoryBytes) {
    return fail(vmm_error(VmmErrc::BadConfig,
                          fmt::format("memory {} GiB is larger than Ferry supports ({} GiB)",
                                      config.memory_bytes >> 30, kMaxMemoryBytes >> 30)));
  }
  if (config.memory_bytes % (2ull << 20) != 0) {
    return fail(vmm_error(VmmErrc::BadConfig, "memory size must be a multiple of 2 MiB"));
  }
  if (config.vcpus == 0 || config.vcpus > kMaxVcpus) {
    return fail(vmm_error(VmmErrc::BadConfig, fmt::format("vCPU count {} out of range 1..{}",
                                                          config.vcpus, kMaxVcpus)));
  }
  if (config.disks.size() > kMaxDisks) {
    return fail(vmm_error(VmmErrc::BadConfig, fmt::format("at most {} disks", kMaxDisks)));
  }
  if (config.cmdline.size() > kMaxCmdline) {
    return fail(vmm_error(VmmErrc::BadConfig, "kernel command line too long"));
  }
  return {};
}

std::vector<uint8_t> encode_config(const VmConfig& config) {
  std::vector<uint8_t> out;
  ByteWriter w(out);
  w.u32(kConfigMagic);
  w.u32(kConfigVersion);
  w.u64(config.memory_bytes);
  w.u32(config.vcpus);
  w.u8(config.hugetlb ? 1 : 0);
  w.str(config.cmdline);
  w.blob(config.cpuid_blob);
  w.u32(static_cast<uint32_t>(config.disks.size()));
  for (const DiskConfig& disk : config.disks) {
    w.u8(disk.read_only ? 1 : 0);
  }
  return out;
}

VmmResult<VmConfig> decode_config(std::span<const uint8_t> blob) {
  ByteReader r(blob);
  VmConfig config;
  uint32_t magic = 0, version = 0, disks = 0;
  uint8_t hugetlb = 0;
  if (!r.u32(magic) || magic != kConfigMagic || !r.u32(version) || version != kConfigVersion) {
    return fail(vmm_error(VmmErrc::BadConfig, "machine config: bad magic or version"));
  }
  if (!r.u64(config.memory_bytes) || !r.u32(config.vcpus) || !r.u8(hugetlb) ||
      !r.str(config.cmdline, kMaxCmdline) || !r.blob(config.cpuid_blob, kMaxCpuidBlob) ||
      !r.u32(disks) || disks > kMaxDisks) {
    return fail(vmm_error(VmmErrc::BadConfig, "machine config: truncated or out of range"));
  }
  config.hugetlb = hugetlb != 0;
  for (uint32_t i = 0; i < disks; ++i) {
    uint8_t ro = 0;
    if (!r.u8(ro)) {
      return fail(vmm_error(VmmErrc::BadConfig, "machine config: truncated disk list"));
    }
    config.disks.push_back(DiskConfig{"", ro != 0});
  }
  if (!r.at_end()) {
    return fail(vmm_error(VmmErrc::BadConfig, "machine config: trailing bytes"));
  }
  if (auto ok = validate_config(config); !ok) {
    return fail(ok.error());
  }
  return config;
}

}  // namespace ferry::vmm
