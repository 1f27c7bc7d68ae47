#include "ferry/vmm/guest_memory.h"

#include <fmt/format.h>

namespace ferry::vmm {

namespace {
constexpr uint64_t k2MiB = 2ull << 20;
}

VmmResult<std::unique_ptr<GuestMemory>> GuestMemory::create(uint64_t size_bytes, bool hugetlb) {
  if (size_bytes == 0 || size_bytes % k2MiB != 0) {
    return fail(vmm_error(
        VmmErrc::BadConfig,
        fmt::format("guest memory size {} is not a positive multiple of 2 MiB", size_bytes)));
  }
  std::unique_ptr<GuestMemory> mem(new GuestMemory());
  const uint64_t low = std::min(size_bytes, kMmioHoleStart);
  const uint64_t high = size_bytes - low;
  struct Piece {
    uint64_t gpa, size;
  };
  std::vector<Piece> pieces{{0, low}};
  if (high > 0) {
    pieces.push_back({kMmioHoleEnd, high});
  }
  uint64_t first_page = 0;
  for (const Piece& piece : pieces) {
    auto mapping = kernel::Mapping::anonymous_shared(piece.size, hugetlb);
    if (!mapping) {
      return fail(vmm_error(VmmErrc::AllocateMemory,
                            fmt::format("allocate {} MiB of guest memory{}", piece.size >> 20,
                                        hugetlb ? " (hugetlb: set vm.nr_hugepages first)" : ""),
                            mapping.error()));
    }
    GuestRegion region{piece.gpa, piece.size, mapping->data(),
                       static_cast<uint32_t>(mem->regions_.size()), first_page};
    first_page += piece.size / kGuestPageSize;
    mem->regions_.push_back(region);
    mem->mappings_.push_back(std::move(*mapping));
  }
  mem->total_size_ = size_bytes;
  mem->vmm_dirty_ = std::make_unique<std::atomic<uint64_t>[]>((first_page + 63) / 64);
  return mem;
}

std::unique_ptr<GuestMemory> GuestMemory::wrap(std::vector<GuestRegion> regions) {
  std::unique_ptr<GuestMemory> mem(new GuestMemory());
  uint64_t first_page = 0;
  for (size_t i = 0; i < regions.size(); ++i) {
    regions[i].slot = static_cast<uint32_t>(i);
    regions[i].first_page = first_page;
    first_page += regions[i].size / kGuestPageSize;
    mem->total_size_ += regions[i].size;
  }
  mem->regions_ = std::move(regions);
  mem->vmm_dirty_ = std::make_unique<std::atomic<uint64_t>[]>((first_page + 63) / 64 + 1);
  return mem;
}

const GuestRegion* GuestMemory::find(uint64_t gpa, uint64_t len) const {
  for (const GuestRegion& region : regions_) {
    // Written to avoid overflow: gpa + len may wrap for hostile values.
    if (gpa >= region.gpa && gpa - region.gpa <= region.size &&
        len <= region.size - (gpa - region.gpa)) {
      return &region;
    }
  }
  return nullptr;
}

std::optional<std::span<const uint8_t>> GuestMemory::view(uint64_t gpa, uint64_t len) const {
  const GuestRegion* region = find(gpa, len);
  if (region == nullptr) {
    return std::nullopt;
  }
  return std::span<const uint8_t>(region->host + (gpa - region->gpa), len);
}

std::optional<std::span<uint8_t>> GuestMemory::writable_view(uint64_t gpa, uint64_t len) {
  const GuestRegion* region = find(gpa, len);
  if (region == nullptr) {
    return std::nullopt;
  }
  mark_dirty(gpa, len);
  return std::span<uint8_t>(region->host + (gpa - region->gpa), len);
}

bool GuestMemory::read(uint64_t gpa, std::span<uint8_t> out) const {
  auto src = view(gpa, out.size());
  if (!src) {
    return false;
  }
  std::memcpy(out.data(), src->data(), out.size());
  return true;
}

bool GuestMemory::write(uint64_t gpa, std::span<const uint8_t> data) {
  auto dst = writable_view(gpa, data.size());
  if (!dst) {
    return false;
  }
  std::memcpy(dst->data(), data.data(), data.size());
  return true;
}

void GuestMemory::mark_dirty(uint64_t gpa, uint64_t len) {
  const GuestRegion* region = find(gpa, len);
  if (region == nullptr || len == 0) {
    return;
  }
  const uint64_t first = region->first_page + (gpa - region->gpa) / kGuestPageSize;
  const uint64_t last = region->first_page + (gpa - region->gpa + len - 1) / kGuestPageSize;
  for (uint64_t page = first; page <= last; ++page) {
    vmm_dirty_[page / 64].fetch_or(1ull << (page % 64), std::memory_order_relaxed);
  }
}

void GuestMemory::take_vmm_dirty(size_t region_index, std::span<uint64_t> bitmap) {
  const GuestRegion& region = regions_.at(region_index);
  const uint64_t pages = region.size / kGuestPageSize;
  for (uint64_t i = 0; i < pages && i / 64 < bitmap.size(); ++i) {
    const uint64_t page = region.first_page + i;
    const uint64_t bit = 1ull << (page % 64);
    // Test first so clean words cost a load, not an atomic RMW.
    if ((vmm_dirty_[page / 64].load(std::memory_order_relaxed) & bit) != 0) {
      vmm_dirty_[page / 64].fetch_and(~bit, std::memory_order_relaxed);
      bitmap[i / 64] |= 1ull << (i % 64);
    }
  }
}

}  // namespace ferry::vmm
