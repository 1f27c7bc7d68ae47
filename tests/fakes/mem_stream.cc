#include "mem_stream.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace ferry::testing {

using migration::StreamErrc;
using migration::StreamError;
using migration::StreamResult;

struct Pipe {
  PipeFaults faults;
  std::deque<uint8_t> buf;
  uint64_t written = 0;  // bytes accepted from the writer (offset of the next byte)
};

struct Connection {
  std::mutex mu;
  std::condition_variable cv;
  Pipe pipes[2];                  // pipes[0]: side 0 -> side 1
  bool broken = false;            // cut: both directions fail (reader drains first)
  bool shut[2] = {false, false};  // side i called shutdown() or was destroyed
};

MemStream::MemStream(std::shared_ptr<Connection> conn, int side, std::string name)
    : conn_(std::move(conn)), side_(side), name_(std::move(name)) {}

MemStream::~MemStream() { shutdown(); }

void MemStream::shutdown() {
  std::lock_guard lock(conn_->mu);
  conn_->shut[side_] = true;
  conn_->cv.notify_all();
}

uint64_t MemStream::bytes_written() const {
  std::lock_guard lock(conn_->mu);
  return conn_->pipes[side_].written;
}

namespace {
StreamError err(StreamErrc errc, const char* detail) { return StreamError{errc, {}, detail}; }
}  // namespace

StreamResult<void> MemStream::write_all(std::span<const uint8_t> data) {
  Pipe& p = conn_->pipes[side_];
  const auto delay = p.faults.write_delay;
  if (delay.count() > 0) {
    std::this_thread::sleep_for(delay);
  }
  if (p.faults.bytes_per_s > 0) {
    std::this_thread::sleep_for(std::chrono::nanoseconds(
        static_cast<int64_t>(data.size() * 1e9 / static_cast<double>(p.faults.bytes_per_s))));
  }
  std::unique_lock lock(conn_->mu);
  size_t done = 0;
  auto last_progress = std::chrono::steady_clock::now();
  while (done < data.size()) {
    if (conn_->shut[side_]) {
      return fail(err(StreamErrc::Aborted, "local shutdown"));
    }
    if (conn_->broken) {
      return fail(err(StreamErrc::Io, "connection reset (injected cut)"));
    }
    if (conn_->shut[1 - side_]) {
      return fail(err(StreamErrc::Closed, "peer closed"));
    }
    size_t room = p.faults.capacity > p.buf.size() ? p.faults.capacity - p.buf.size() : 0;
    if (room == 0) {
      if (timeout_.count() > 0) {
        if (conn_->cv.wait_until(lock, last_progress + timeout_) == std::cv_status::timeout &&
            p.buf.size() >= p.faults.capacity) {
          return fail(err(StreamErrc::TimedOut, "peer not reading"));
        }
      } else {
        conn_->cv.wait(lock);
      }
      continue;
    }
    size_t n = std::min(room, data.size() - done);
    if (p.written >= p.faults.cut_after_bytes) {
      conn_->broken = true;
      conn_->cv.notify_all();
      return fail(err(StreamErrc::Io, "connection reset (injected cut)"));
    }
    // Stop the chunk at the next fault offset so faults hit exactly one byte position.
    n = static_cast<size_t>(std::min<uint64_t>(n, p.faults.cut_after_bytes - p.written));
    const uint64_t start = p.written;
    p.buf.insert(p.buf.end(), data.begin() + static_cast<std::ptrdiff_t>(done),
                 data.begin() + static_cast<std::ptrdiff_t>(done + n));
    if (p.faults.corrupt_byte >= start && p.faults.corrupt_byte < start + n) {
      p.buf[p.buf.size() - n + (p.faults.corrupt_byte - start)] ^= 0xFF;
    }
    if (p.faults.capture) {
      p.faults.capture->insert(p.faults.capture->end(), p.buf.end() - static_cast<std::ptrdiff_t>(n),
                               p.buf.end());
    }
    p.written += n;
    done += n;
    if (p.faults.counter) {
      *p.faults.counter += n;
    }
    last_progress = std::chrono::steady_clock::now();
    conn_->cv.notify_all();
  }
  return {};
}

StreamResult<void> MemStream::read_exact(std::span<uint8_t> out) {
  Pipe& p = conn_->pipes[1 - side_];
  std::unique_lock lock(conn_->mu);
  size_t done = 0;
  auto last_progress = std::chrono::steady_clock::now();
  while (done < out.size()) {
    if (conn_->shut[side_]) {
      return fail(err(StreamErrc::Aborted, "local shutdown"));
    }
    if (!p.buf.empty()) {
      size_t n = std::min(p.buf.size(), out.size() - done);
      std::copy_n(p.buf.begin(), n, out.begin() + static_cast<std::ptrdiff_t>(done));
      p.buf.erase(p.buf.begin(), p.buf.begin() + static_cast<std::ptrdiff_t>(n));
      done += n;
      last_progress = std::chrono::steady_clock::now();
      conn_->cv.notify_all();
      continue;
    }
    if (conn_->broken) {
      return fail(err(StreamErrc::Io, "connection reset (injected cut)"));
    }
    if (conn_->shut[1 - side_]) {
      return fail(err(StreamErrc::Closed, "peer closed"));
    }
    if (timeout_.count() > 0) {
      if (conn_->cv.wait_until(lock, last_progress + timeout_) == std::cv_status::timeout &&
          p.buf.empty()) {
        return fail(err(StreamErrc::TimedOut, "no data from peer"));
      }
    } else {
      conn_->cv.wait(lock);
    }
  }
  return {};
}

std::pair<std::unique_ptr<MemStream>, std::unique_ptr<MemStream>> make_stream_pair(
    PipeFaults source_to_dest, PipeFaults dest_to_source, const std::string& name) {
  auto conn = std::make_shared<Connection>();
  conn->pipes[0].faults = source_to_dest;
  conn->pipes[1].faults = dest_to_source;
  return {std::make_unique<MemStream>(conn, 0, name + ":source"),
          std::make_unique<MemStream>(conn, 1, name + ":dest")};
}

void MemStream::cut() {
  std::lock_guard lock(conn_->mu);
  conn_->broken = true;
  conn_->cv.notify_all();
}

}  // namespace ferry::testing
