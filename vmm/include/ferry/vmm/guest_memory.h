// GuestMemory: the guest's RAM as anonymous MAP_SHARED mappings, laid out the x86 way
// (RAM below the 3-4 GiB MMIO hole, the rest above 4 GiB). All VMM accesses to guest RAM
// go through this class: every access is bounds-checked against RAM, and every write
// marks the VMM dirty bitmap, because KVM's dirty log only sees writes made by vCPUs.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "ferry/kernel-interfaces/mapping.h"
#include "ferry/vmm/vmm_error.h"

namespace ferry::vmm {

inline constexpr uint64_t kGuestPageSize = 4096;
/// Start of the MMIO hole below 4 GiB (virtio-mmio, IOAPIC, LAPIC live above it).
inline constexpr uint64_t kMmioHoleStart = 0xC000'0000;
inline constexpr uint64_t kMmioHoleEnd = 0x1'0000'0000;

struct GuestRegion {
  uint64_t gpa = 0;
  uint64_t size = 0;
  uint8_t* host = nullptr;
  uint32_t slot = 0;        // KVM memory slot number
  uint64_t first_page = 0;  // index of this region's first page across all regions
};

class GuestMemory {
 public:
  /// Allocates `size_bytes` of RAM (multiple of 2 MiB), split around the MMIO hole.
  static VmmResult<std::unique_ptr<GuestMemory>> create(uint64_t size_bytes, bool hugetlb);
  /// Wraps caller-owned buffers as guest RAM (unit tests, fuzzers): regions as given.
  static std::unique_ptr<GuestMemory> wrap(std::vector<GuestRegion> regions);

  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  std::span<const GuestRegion> regions() const { return regions_; }
  uint64_t size() const { return total_size_; }
  uint64_t page_count() const { return total_size_ / kGuestPageSize; }

  /// True if [gpa, gpa + len) lies entirely inside one RAM region (len may be 0).
  bool contains(uint64_t gpa, uint64_t len) const { return find(gpa, len) != nullptr; }

  /// Read-only host view of [gpa, gpa + len), or nullopt if not wholly inside one region.
  std::optional<std::span<const uint8_t>> view(uint64_t gpa, uint64_t len) const;
  /// Writable host view of [gpa, gpa + len); marks the range dirty first. For device DMA
  /// (e.g. io_uring reads landing in guest buffers) call mark_dirty again on completion.
  std::optional<std::span<uint8_t>> writable_view(uint64_t gpa, uint64_t len);

  /// Copies out of / into guest RAM. False (and nothing copied) if out of range.
  bool read(uint64_t gpa, std::span<uint8_t> out) const;
  bool write(uint64_t gpa, std::span<const uint8_t> data);

  template <class T>
  std::optional<T> read_obj(uint64_t gpa) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    // SAFETY: T is trivially copyable; the span covers exactly sizeof(T) bytes of it.
    if (!read(gpa, {reinterpret_cast<uint8_t*>(&value), sizeof(T)})) {
      return std::nullopt;
    }
    return value;
  }
  template <class T>
  bool write_obj(uint64_t gpa, const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    // SAFETY: T is trivially copyable; the span covers exactly sizeof(T) bytes of it.
    return write(gpa, {reinterpret_cast<const uint8_t*>(&value), sizeof(T)});
  }

  /// Records that the VMM wrote [gpa, gpa + len) (ignored outside RAM). Thread-safe.
  void mark_dirty(uint64_t gpa, uint64_t len);
  /// ORs the VMM-written pages of `region` into `bitmap` (bit 0 = the region's first
  /// page) and clears them. Thread-safe against concurrent mark_dirty.
  void take_vmm_dirty(size_t region, std::span<uint64_t> bitmap);

 private:
  GuestMemory() = default;
  const GuestRegion* find(uint64_t gpa, uint64_t len) const;

  std::vector<kernel::Mapping> mappings_;  // empty for wrap()
  std::vector<GuestRegion> regions_;
  uint64_t total_size_ = 0;
  // One bit per page across all regions; written by device threads, read by migration.
  std::unique_ptr<std::atomic<uint64_t>[]> vmm_dirty_;
};

}  // namespace ferry::vmm
