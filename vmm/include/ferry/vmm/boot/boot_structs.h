// The binary structures the boot loaders write into guest memory, laid out byte for byte
// as their specifications say: Linux's boot_params/setup_header offsets
// (Documentation/arch/x86/boot.rst, zero-page.rst), Xen's hvm_start_info
// (xen/include/public/arch-x86/hvm/start_info.h) and the multiboot v1 info structure.
#pragma once

#include <cstdint>
#include <type_traits>

namespace ferry::vmm::boot {

/// e820 types (ACPI address range types).
inline constexpr uint32_t kE820Ram = 1;
inline constexpr uint32_t kE820Reserved = 2;

#pragma pack(push, 1)
/// One entry of boot_params.e820_table (20 bytes, packed).
struct BootE820Entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
};
#pragma pack(pop)
static_assert(sizeof(BootE820Entry) == 20);

/// Offsets inside struct boot_params (the 4 KiB zero page) and its setup_header.
namespace zp {
inline constexpr uint64_t kExtRamdiskImage = 0x0c0;
inline constexpr uint64_t kExtRamdiskSize = 0x0c4;
inline constexpr uint64_t kExtCmdLinePtr = 0x0c8;
inline constexpr uint64_t kE820Entries = 0x1e8;
inline constexpr uint64_t kSetupHeader = 0x1f1;
inline constexpr uint64_t kSetupSects = 0x1f1;
inline constexpr uint64_t kVidMode = 0x1fa;
inline constexpr uint64_t kBootFlag = 0x1fe;
inline constexpr uint64_t kHeaderEndByte = 0x201;  // setup header ends at 0x202 + this byte
inline constexpr uint64_t kHeaderMagic = 0x202;
inline constexpr uint64_t kVersion = 0x206;
inline constexpr uint64_t kTypeOfLoader = 0x210;
inline constexpr uint64_t kLoadFlags = 0x211;
inline constexpr uint64_t kCode32Start = 0x214;
inline constexpr uint64_t kRamdiskImage = 0x218;
inline constexpr uint64_t kRamdiskSize = 0x21c;
inline constexpr uint64_t kCmdLinePtr = 0x228;
inline constexpr uint64_t kInitrdAddrMax = 0x22c;
inline constexpr uint64_t kKernelAlignment = 0x230;
inline constexpr uint64_t kRelocatableKernel = 0x234;
inline constexpr uint64_t kXloadflags = 0x236;
inline constexpr uint64_t kCmdlineSize = 0x238;
inline constexpr uint64_t kPayloadOffset = 0x248;
inline constexpr uint64_t kPayloadLength = 0x24c;
inline constexpr uint64_t kPrefAddress = 0x258;
inline constexpr uint64_t kInitSize = 0x260;
inline constexpr uint64_t kE820Table = 0x2d0;
inline constexpr uint32_t kE820MaxEntries = 128;

inline constexpr uint16_t kBootFlagValue = 0xaa55;
inline constexpr uint32_t kHeaderMagicValue = 0x53726448;  // "HdrS"
inline constexpr uint16_t kMinVersion = 0x020c;            // 2.12: xloadflags
inline constexpr uint16_t kXlfKernel64 = 1 << 0;
inline constexpr uint8_t kLoadedHigh = 1 << 0;
inline constexpr uint8_t kTypeOfLoaderUndefined = 0xff;
inline constexpr uint64_t kEntry64Offset = 0x200;  // startup_64 = load address + 0x200
}  // namespace zp

/// struct hvm_start_info, version 1 (56 bytes).
struct HvmStartInfo {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;
  uint32_t memmap_entries;
  uint32_t reserved;
};
static_assert(sizeof(HvmStartInfo) == 56);
inline constexpr uint32_t kHvmStartMagic = 0x336ec578;
inline constexpr uint32_t kHvmStartVersion = 1;

/// struct hvm_modlist_entry (32 bytes).
struct HvmModlistEntry {
  uint64_t paddr;
  uint64_t size;
  uint64_t cmdline_paddr;
  uint64_t reserved;
};
static_assert(sizeof(HvmModlistEntry) == 32);

/// struct hvm_memmap_table_entry (24 bytes); types are e820 types.
struct HvmMemmapEntry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};
static_assert(sizeof(HvmMemmapEntry) == 24);

/// Multiboot v1 boot information (the fields up to boot_loader_name, 68 bytes).
struct MultibootInfo {
  uint32_t flags;
  uint32_t mem_lower;  // KiB below 640 KiB
  uint32_t mem_upper;  // KiB from 1 MiB to the first hole
  uint32_t boot_device;
  uint32_t cmdline;
  uint32_t mods_count;
  uint32_t mods_addr;
  uint32_t syms[4];
  uint32_t mmap_length;
  uint32_t mmap_addr;
  uint32_t drives_length;
  uint32_t drives_addr;
  uint32_t config_table;
  uint32_t boot_loader_name;
};
static_assert(sizeof(MultibootInfo) == 68);
inline constexpr uint32_t kMultibootInfoMemory = 1 << 0;
inline constexpr uint32_t kMultibootInfoCmdline = 1 << 2;
inline constexpr uint32_t kMultibootInfoMods = 1 << 3;
inline constexpr uint32_t kMultibootInfoMmap = 1 << 6;
inline constexpr uint32_t kMultibootInfoLoaderName = 1 << 9;
/// EAX at a multiboot (and Ferry64) entry.
inline constexpr uint32_t kMultibootBootloaderMagic = 0x2badb002;
/// Magic of the multiboot v1 header inside the kernel file.
inline constexpr uint32_t kMultibootHeaderMagic = 0x1badb002;

/// Multiboot module descriptor (16 bytes).
struct MultibootModule {
  uint32_t mod_start;
  uint32_t mod_end;
  uint32_t string;
  uint32_t reserved;
};
static_assert(sizeof(MultibootModule) == 16);

#pragma pack(push, 1)
/// Multiboot memory map entry; `size` (20) excludes the size field itself.
struct MultibootMmapEntry {
  uint32_t size;
  uint64_t addr;
  uint64_t len;
  uint32_t type;
};
#pragma pack(pop)
static_assert(sizeof(MultibootMmapEntry) == 24);

/// Ferry64 header in the test guest's flat image (see docs/boot.md).
struct Ferry64Header {
  uint64_t magic;
  uint64_t entry64;
  uint64_t load_addr;
  uint64_t load_end_addr;
  uint64_t bss_end_addr;
};
static_assert(sizeof(Ferry64Header) == 40);
/// The 8 bytes "FERRY64\0" read as a little-endian u64.
inline constexpr uint64_t kFerry64Magic = 0x0034365952524546ull;
/// The header must start within this many bytes of the file, 8-byte aligned.
inline constexpr uint64_t kFerry64SearchBytes = 8192;

static_assert(std::is_trivially_copyable_v<HvmStartInfo> &&
              std::is_trivially_copyable_v<MultibootInfo> &&
              std::is_trivially_copyable_v<MultibootMmapEntry>);

}  // namespace ferry::vmm::boot
