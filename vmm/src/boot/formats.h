// The per-format loaders behind load_kernel (private to vmm/src/boot). Each validates the
// file, loads it and completes the BootPlan it is given.
#pragma once

#include <optional>

#include "boot_common.h"

namespace ferry::vmm::boot::detail {

/// Offset of the FERRY64 header in `kernel`, if any.
std::optional<uint64_t> find_ferry64_header(std::span<const uint8_t> kernel);
/// Offset of a multiboot v1 header (magic only; checksum checked by the loader).
std::optional<uint64_t> find_multiboot_header(std::span<const uint8_t> kernel);
/// True if the file carries a bzImage setup header (0xAA55 and "HdrS").
bool looks_like_bzimage(std::span<const uint8_t> kernel);
/// True if the file starts with the ELF magic.
bool looks_like_elf(std::span<const uint8_t> kernel);
/// True if an ELF file carries the XEN_ELFNOTE_PHYS32_ENTRY note (errors count as no).
bool has_pvh_note(std::span<const uint8_t> kernel);

VmmResult<void> load_ferry64(const LoadInput& in, BootPlan& plan);
VmmResult<void> load_multiboot(const LoadInput& in, BootPlan& plan);
VmmResult<void> load_pvh(const LoadInput& in, BootPlan& plan);
VmmResult<void> load_bzimage(const LoadInput& in, BootPlan& plan);

}  // namespace ferry::vmm::boot::detail
