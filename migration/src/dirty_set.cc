#include "ferry/migration/dirty_set.h"

#include <algorithm>
#include <bit>

namespace ferry::migration {

DirtyBitmap make_bitmap(uint64_t bits) { return DirtyBitmap((bits + 63) / 64, 0); }

void set_all(DirtyBitmap& bitmap, uint64_t bits) {
  bitmap.assign((bits + 63) / 64, ~uint64_t{0});
  if (bits % 64 != 0) {
    bitmap.back() = (uint64_t{1} << (bits % 64)) - 1;
  }
}

uint64_t count_set(const DirtyBitmap& bitmap) {
  uint64_t n = 0;
  for (uint64_t w : bitmap) {
    n += static_cast<uint64_t>(std::popcount(w));
  }
  return n;
}

std::vector<uint64_t> set_indices(const DirtyBitmap& bitmap, uint64_t bits) {
  std::vector<uint64_t> out;
  out.reserve(count_set(bitmap));
  for (size_t w = 0; w < bitmap.size(); ++w) {
    uint64_t word = bitmap[w];
    while (word != 0) {
      uint64_t i = w * 64 + static_cast<uint64_t>(std::countr_zero(word));
      word &= word - 1;
      if (i < bits) {
        out.push_back(i);
      }
    }
  }
  return out;
}

GuestPages::GuestPages(std::vector<RamRegion> regions) : regions_(std::move(regions)) {
  for (const RamRegion& r : regions_) {
    first_page_.push_back(page_count_);
    page_count_ += r.size / kPageSize;
  }
}

size_t GuestPages::region_of(uint64_t index) const {
  auto it = std::upper_bound(first_page_.begin(), first_page_.end(), index);
  return static_cast<size_t>(it - first_page_.begin()) - 1;
}

uint64_t GuestPages::gpa_of(uint64_t index) const {
  size_t r = region_of(index);
  return regions_[r].gpa + (index - first_page_[r]) * kPageSize;
}

std::optional<uint64_t> GuestPages::index_of(uint64_t gpa) const {
  if (gpa % kPageSize != 0) {
    return std::nullopt;
  }
  for (size_t r = 0; r < regions_.size(); ++r) {
    const RamRegion& reg = regions_[r];
    if (gpa >= reg.gpa && gpa - reg.gpa < reg.size) {
      return first_page_[r] + (gpa - reg.gpa) / kPageSize;
    }
  }
  return std::nullopt;
}

std::span<uint8_t> GuestPages::page(uint64_t index) const {
  size_t r = region_of(index);
  return {regions_[r].host + (index - first_page_[r]) * kPageSize, kPageSize};
}

}  // namespace ferry::migration
