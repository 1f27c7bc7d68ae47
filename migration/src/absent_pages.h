// Pages no physical memory backs yet. Guest RAM is a shared anonymous (shmem) mapping:
// a page nobody wrote is a hole that reads as zero, but *reading* it makes the kernel
// allocate and clear a page (~5 us here, docs/migration.md). Round 0 meets every page,
// mostly untouched ones on a fresh or idle guest, so both sides ask mincore(2) first:
// the source sends a hole as a Zero page without reading it, the destination leaves a
// hole alone instead of writing zeros into it. Only exact when the host has no swap (a
// swapped-out shmem page is not resident either), so it is off when swap is configured.
#pragma once

#include <cstdint>
#include <span>

#include "ferry/migration/dirty_set.h"

namespace ferry::migration::detail {

/// True when non-resident guest pages are known to read as zero (no swap on this host).
bool absent_means_zero();

/// For each index in `indices` (ascending), sets absent[i] to 1 when no physical page
/// backs it; leaves it 0 when resident or unknown (mincore failed, unaligned memory).
void find_absent(const GuestPages& pages, std::span<const uint64_t> indices,
                 std::span<uint8_t> absent);

/// True when this kernel has MADV_POPULATE_WRITE (Linux 5.14+); asked once.
bool kernel_can_populate();

/// Allocates and maps pages first..first+count-1 ahead of writing them: one
/// MADV_POPULATE_WRITE call per host-contiguous run instead of one page fault per page.
/// On the destination a page fault costs more than the copy that triggers it (a trap,
/// shmem allocation and clearing; profiled 2026-11-26: ~27% of the receiver's CPU in a
/// bulk round). Best effort: on a kernel without it (< 5.14) the writes fault as before.
void populate_for_write(const GuestPages& pages, uint64_t first, uint64_t count);

}  // namespace ferry::migration::detail
