#include "ferry/kernel-interfaces/mapping.h"

#include <sys/mman.h>

namespace ferry::kernel {

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    reset();
    addr_ = std::exchange(other.addr_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SysResult<Mapping> Mapping::anonymous_shared(size_t size, bool hugetlb) {
  int flags = MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE;
  if (hugetlb) {
    flags |= MAP_HUGETLB;
  }
  // SAFETY: a fresh anonymous mapping aliases no existing object.
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (addr == MAP_FAILED) {
    return fail(last_error(hugetlb ? "mmap(MAP_HUGETLB)" : "mmap"));
  }
  return Mapping(addr, size);
}

SysResult<Mapping> Mapping::of_fd(int fd, size_t size, int prot, off_t offset) {
  // SAFETY: the kernel validates fd/offset/size; the mapping is owned by the result.
  void* addr = ::mmap(nullptr, size, prot, MAP_SHARED, fd, offset);
  if (addr == MAP_FAILED) {
    return fail(last_error("mmap"));
  }
  return Mapping(addr, size);
}

void Mapping::reset() noexcept {
  if (addr_ != nullptr) {
    ::munmap(addr_, size_);
    addr_ = nullptr;
    size_ = 0;
  }
}

}  // namespace ferry::kernel
