// A small, defensive ELF reader for the boot loaders (ELF32 and ELF64, little-endian
// x86): program headers, PT_LOAD segments by physical address, and PT_NOTE entries.
// Every offset and size read from the file is checked against the file before use.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "ferry/vmm/guest_memory.h"
#include "ferry/vmm/vmm_error.h"

namespace ferry::vmm::boot::detail {

inline constexpr uint32_t kPtLoad = 1;
inline constexpr uint32_t kPtNote = 4;
inline constexpr uint32_t kMaxProgramHeaders = 256;
/// Bound on note bytes per PT_NOTE segment (Linux's is 0x200): a hostile file cannot make
/// note scanning take more than a moment.
inline constexpr uint64_t kMaxNoteSegmentBytes = uint64_t{64} * 1024;

struct ElfSegment {
  uint32_t type = 0;
  uint64_t offset = 0;
  uint64_t vaddr = 0;
  uint64_t paddr = 0;
  uint64_t filesz = 0;
  uint64_t memsz = 0;
};

struct ElfImage {
  bool is64 = false;
  uint16_t machine = 0;
  uint64_t entry = 0;
  std::vector<ElfSegment> segments;  // all program headers, in file order
};

/// Parses and validates the ELF header and program headers: segment file ranges lie in
/// the file, filesz <= memsz, no address range wraps. `what` prefixes error messages.
VmmResult<ElfImage> parse_elf(std::span<const uint8_t> file, std::string_view what);

/// One note: owner name (without NUL), type, descriptor bytes.
struct ElfNote {
  std::string_view name;
  uint32_t type = 0;
  std::span<const uint8_t> desc;
};

/// Calls `visit` for every note of every PT_NOTE segment; errors on a malformed note.
VmmResult<void> for_each_note(std::span<const uint8_t> file, const ElfImage& image,
                              std::string_view what,
                              const std::function<void(const ElfNote&)>& visit);

/// Loaded extent of an ELF file: lowest and highest+1 physical address of its PT_LOADs.
struct LoadedRange {
  uint64_t start = 0;
  uint64_t end = 0;
};

/// Copies every PT_LOAD segment to its physical address (p_paddr) and zeroes its bss;
/// fails if there is none or any segment falls outside RAM at or above kKernelMinAddr.
VmmResult<LoadedRange> load_elf_segments(GuestMemory& mem, std::span<const uint8_t> file,
                                         const ElfImage& image, std::string_view what);

}  // namespace ferry::vmm::boot::detail
