// UniqueFd: sole owner of one file descriptor. Move-only; a moved-from UniqueFd holds -1;
// the destructor closes and never throws. Every fd in Ferry is opened with O_CLOEXEC.
#pragma once

#include <utility>

#include "ferry/kernel-interfaces/sys_error.h"

namespace ferry::kernel {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset(std::exchange(other.fd_, -1));
    }
    return *this;
  }
  ~UniqueFd() { reset(); }

  /// Opens `path` with O_CLOEXEC added to `flags`.
  static SysResult<UniqueFd> open(const char* path, int flags, unsigned mode = 0);

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  /// Gives up ownership without closing.
  int release() { return std::exchange(fd_, -1); }
  /// Closes the current fd (if any) and takes `fd`.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

}  // namespace ferry::kernel
