#include "ferry/kernel-interfaces/event_fd.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace ferry::kernel {

SysResult<EventFd> EventFd::create(unsigned initial) {
  auto fd = ::eventfd(initial, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) {
    return fail(last_error("eventfd"));
  }
  return EventFd(UniqueFd(fd));
}

SysResult<EventFd> EventFd::create_semaphore(unsigned initial) {
  auto fd = ::eventfd(initial, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
  if (fd < 0) {
    return fail(last_error("eventfd(EFD_SEMAPHORE)"));
  }
  return EventFd(UniqueFd(fd));
}

SysResult<void> EventFd::signal(uint64_t value) const {
  // A full counter (0xfffffffffffffffe) makes a non-blocking write fail with EAGAIN;
  // that only happens after ~2^64 unconsumed signals, so it is reported, not retried.
  ssize_t n = retry_eintr([&] { return ::write(fd_.get(), &value, sizeof(value)); });
  if (n != static_cast<ssize_t>(sizeof(value))) {
    return fail(last_error("write(eventfd)"));
  }
  return {};
}

SysResult<std::optional<uint64_t>> EventFd::try_consume() const {
  uint64_t value = 0;
  ssize_t n = retry_eintr([&] { return ::read(fd_.get(), &value, sizeof(value)); });
  if (n < 0) {
    if (errno == EAGAIN) {
      return std::optional<uint64_t>{};
    }
    return fail(last_error("read(eventfd)"));
  }
  return std::optional<uint64_t>(value);
}

SysResult<std::optional<uint64_t>> EventFd::consume(int timeout_ms) const {
  for (;;) {
    auto got = try_consume();
    if (!got || got->has_value()) {
      return got;
    }
    pollfd pfd{fd_.get(), POLLIN, 0};
    int rc = retry_eintr([&] { return ::poll(&pfd, 1, timeout_ms); });
    if (rc < 0) {
      return fail(last_error("poll(eventfd)"));
    }
    if (rc == 0) {
      return std::optional<uint64_t>{};
    }
    // Another consumer may have raced us to the count: loop and try again.
  }
}

}  // namespace ferry::kernel
