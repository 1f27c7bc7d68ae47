// Mapping: RAII owner of one mmap() region (munmap in the destructor, never throws).
// Used for guest RAM (anonymous MAP_SHARED, optionally hugetlb), the vCPU kvm_run page
// and dirty rings. Move-only; a moved-from Mapping is empty.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "ferry/kernel-interfaces/sys_error.h"

namespace ferry::kernel {

class Mapping {
 public:
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping(Mapping&& other) noexcept
      : addr_(std::exchange(other.addr_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  Mapping& operator=(Mapping&& other) noexcept;
  ~Mapping() { reset(); }

  /// Anonymous shared memory: readable by other threads while vCPUs write it.
  static SysResult<Mapping> anonymous_shared(size_t size, bool hugetlb);
  /// Maps `size` bytes of `fd` at `offset` (kvm_run page, dirty ring).
  static SysResult<Mapping> of_fd(int fd, size_t size, int prot, off_t offset);

  uint8_t* data() const { return static_cast<uint8_t*>(addr_); }
  size_t size() const { return size_; }
  std::span<uint8_t> bytes() const { return {data(), size_}; }
  bool empty() const { return addr_ == nullptr; }
  void reset() noexcept;

 private:
  Mapping(void* addr, size_t size) : addr_(addr), size_(size) {}
  void* addr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace ferry::kernel
