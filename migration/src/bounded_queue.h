// A small blocking FIFO with a capacity, used between the scanner, encoder and writer
// threads of the sender pipeline. close() lets consumers drain; abort() drops everything
// and wakes every waiter.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

namespace ferry::migration {

template <class T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : capacity_(capacity) {}

  /// Blocks while full; false if the queue was closed or aborted. `*waited` tells whether
  /// the caller had to wait for space (back-pressure signal).
  /// A set `stop` flag (checked every few ms while waiting) also makes push fail.
  bool push(T value, bool* waited = nullptr, const std::atomic<bool>* stop = nullptr) {
    std::unique_lock lock(mu_);
    bool had_to_wait = false;
    while (items_.size() >= capacity_ && !closed_ && !aborted_) {
      if (stop != nullptr && stop->load()) {
        return false;
      }
      had_to_wait = true;
      not_full_.wait_for(lock, std::chrono::milliseconds(20));
    }
    if (waited != nullptr) {
      *waited = had_to_wait;
    }
    if (closed_ || aborted_) {
      return false;
    }
    items_.push_back(std::move(value));
    not_empty_.notify_one();
    return true;
  }

  /// Blocks while empty; nullopt once closed and drained, or aborted.
  std::optional<T> pop(bool* waited = nullptr) {
    std::unique_lock lock(mu_);
    bool had_to_wait = false;
    while (items_.empty() && !closed_ && !aborted_) {
      had_to_wait = true;
      not_empty_.wait(lock);
    }
    if (waited != nullptr) {
      *waited = had_to_wait;
    }
    if (aborted_ || items_.empty()) {
      return std::nullopt;
    }
    T value = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return value;
  }

  void close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

  void abort() {
    std::lock_guard lock(mu_);
    aborted_ = true;
    items_.clear();
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<T> items_;
  size_t capacity_;
  bool closed_ = false;
  bool aborted_ = false;
};

}  // namespace ferry::migration
