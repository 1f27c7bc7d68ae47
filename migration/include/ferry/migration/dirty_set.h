// Dirty bitmaps (one bit per page or disk block) and the page numbering across RAM
// regions that every dirty bitmap uses: page 0 is the first page of region 0, regions
// follow in order (vm_interface.h). Pure helpers, no locking.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "ferry/migration/vm_interface.h"

namespace ferry::migration {

/// A bitmap sized for `bits` entries, all clear.
DirtyBitmap make_bitmap(uint64_t bits);
/// Sets the first `bits` entries.
void set_all(DirtyBitmap& bitmap, uint64_t bits);
/// Number of set entries.
uint64_t count_set(const DirtyBitmap& bitmap);
/// Indices of the set entries among the first `bits`, ascending; clears nothing.
std::vector<uint64_t> set_indices(const DirtyBitmap& bitmap, uint64_t bits);
inline bool test_bit(const DirtyBitmap& b, uint64_t i) { return (b[i / 64] >> (i % 64)) & 1; }
inline void set_bit(DirtyBitmap& b, uint64_t i) { b[i / 64] |= uint64_t{1} << (i % 64); }

/// Page numbering over a VM's RAM regions; validates gpas coming off the wire.
class GuestPages {
 public:
  GuestPages() = default;
  explicit GuestPages(std::vector<RamRegion> regions);

  uint64_t page_count() const { return page_count_; }
  uint64_t memory_bytes() const { return page_count_ * kPageSize; }
  const std::vector<RamRegion>& regions() const { return regions_; }
  /// Guest physical address of page `index` (index < page_count()).
  uint64_t gpa_of(uint64_t index) const;
  /// Page index of a page-aligned gpa inside a region, or nullopt if outside all regions.
  std::optional<uint64_t> index_of(uint64_t gpa) const;
  /// Host bytes of page `index`.
  std::span<uint8_t> page(uint64_t index) const;
  /// Index of the first page of region `r`.
  uint64_t first_page(size_t r) const { return first_page_[r]; }

 private:
  size_t region_of(uint64_t index) const;
  std::vector<RamRegion> regions_;
  std::vector<uint64_t> first_page_;
  uint64_t page_count_ = 0;
};

}  // namespace ferry::migration
