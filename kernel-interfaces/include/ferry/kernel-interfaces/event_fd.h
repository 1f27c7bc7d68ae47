// EventFd: move-only RAII owner of one eventfd(2) counter (EFD_CLOEXEC | EFD_NONBLOCK).
// Used to wake a thread blocked in io_uring or poll (arm IORING_OP_POLL_ADD on fd() in a
// ring: the fd is non-blocking, so a ring READ would just return -EAGAIN), and as KVM
// irqfd/ioeventfd. signal() adds to the
// counter; consume() reads and resets it (try_consume returns nullopt when it is zero).
#pragma once

#include <cstdint>
#include <optional>

#include "ferry/kernel-interfaces/unique_fd.h"

namespace ferry::kernel {

class EventFd {
 public:
  EventFd() = default;
  EventFd(const EventFd&) = delete;
  EventFd& operator=(const EventFd&) = delete;
  EventFd(EventFd&&) noexcept = default;
  EventFd& operator=(EventFd&&) noexcept = default;
  ~EventFd() = default;

  /// A fresh non-blocking eventfd whose counter starts at `initial`.
  static SysResult<EventFd> create(unsigned initial = 0);
  /// In semaphore mode (EFD_SEMAPHORE) each consume() takes 1 instead of the whole count.
  static SysResult<EventFd> create_semaphore(unsigned initial = 0);

  /// Adds `value` to the counter, waking readers. Thread-safe (one write(2)).
  SysResult<void> signal(uint64_t value = 1) const;
  /// Reads and clears the counter; nullopt if it was zero (EAGAIN). Never blocks.
  SysResult<std::optional<uint64_t>> try_consume() const;
  /// Waits until the counter is non-zero (poll), then reads and clears it.
  /// `timeout_ms` < 0 waits forever; on timeout returns nullopt.
  SysResult<std::optional<uint64_t>> consume(int timeout_ms = -1) const;

  int fd() const { return fd_.get(); }
  bool valid() const { return fd_.valid(); }

 private:
  explicit EventFd(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace ferry::kernel
