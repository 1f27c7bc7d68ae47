#include "ferry/kernel-interfaces/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

namespace ferry::kernel {

SysResult<UniqueFd> UniqueFd::open(const char* path, int flags, unsigned mode) {
  int fd = retry_eintr([&] { return ::open(path, flags | O_CLOEXEC, mode); });
  if (fd < 0) {
    return fail(last_error("open"));
  }
  return UniqueFd(fd);
}

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) {
    // close() is not retried on EINTR: on Linux the fd is released either way.
    ::close(fd_);
  }
  fd_ = fd;
}

}  // namespace ferry::kernel
