// Whole-memory and whole-disk digests compared at commit: per region (or disk) the
// XXH3-64 of the little-endian array of per-page (per-block) XXH3-64 hashes. Computed
// either by re-hashing the contents ("full") or from a hash list kept while copying.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ferry/migration/dirty_set.h"
#include "ferry/migration/vm_interface.h"
#include "ferry/migration/wire.h"

namespace ferry::migration {

/// XXH3-64 over the LE bytes of `hashes`.
uint64_t hash_list(std::span<const uint64_t> hashes);

/// Hashes every page now (the VM must not be running), split over `threads` threads.
std::vector<RegionDigest> memory_digest_full(const GuestPages& pages, unsigned threads);
/// Digest from a per-page hash list (index = page number).
std::vector<RegionDigest> memory_digest_from(const GuestPages& pages,
                                             std::span<const uint64_t> page_hashes);

/// Reads the whole disk in `block_size` blocks and hashes each.
VmResult<DiskDigest> disk_digest_full(MigratableDisk& disk, uint64_t size, uint32_t block_size);
DiskDigest disk_digest_from(uint64_t size, uint32_t block_size,
                            std::span<const uint64_t> block_hashes);

/// Number of `block_size` blocks covering `size` bytes.
inline uint64_t block_count(uint64_t size, uint32_t block_size) {
  return (size + block_size - 1) / block_size;
}

}  // namespace ferry::migration
