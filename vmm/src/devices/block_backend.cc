#include "ferry/vmm/devices/block_backend.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <array>
#include <thread>

namespace ferry::vmm {

namespace {

constexpr std::array<int, 3> kRequiredOps = {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC};

VmmError open_error(const std::string& path, std::string what,
                    std::optional<kernel::SysError> cause = std::nullopt) {
  return vmm_error(VmmErrc::OpenDisk, fmt::format("disk image {}: {}", path, what),
                   cause);
}

}  // namespace

uint64_t BlockOp::length() const {
  uint64_t total = 0;
  for (const iovec& v : iov) {
    total += v.iov_len;
  }
  return total;
}

BlockBackend::BlockBackend(std::string path, kernel::UniqueFd fd, uint64_t size, bool read_only,
                           kernel::IoUring worker_ring, kernel::IoUring sync_ring)
    : path_(std::move(path)),
      fd_(std::move(fd)),
      size_(size),
      read_only_(read_only),
      worker_ring_(std::move(worker_ring)),
      sync_ring_(std::move(sync_ring)) {}

VmmResult<std::unique_ptr<BlockBackend>> BlockBackend::open(const std::string& path, bool read_only,
                                                            unsigned ring_entries) {
  auto fd = kernel::UniqueFd::open(path.c_str(), read_only ? O_RDONLY : O_RDWR);
  if (!fd && !read_only && (fd.error().errnum() == EACCES || fd.error().errnum() == EROFS)) {
    // A file the VMM may not write is served read-only (VIRTIO_BLK_F_RO), not refused.
    read_only = true;
    fd = kernel::UniqueFd::open(path.c_str(), O_RDONLY);
  }
  if (!fd) {
    const int err = fd.error().errnum();
    return fail(open_error(path,
                           err == ENOENT   ? "no such file"
                           : err == EISDIR ? "is a directory, not an image file"
                                           : "cannot open",
                           fd.error()));
  }
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) {
    return fail(open_error(path, "cannot stat", kernel::last_error("fstat")));
  }
  if (S_ISDIR(st.st_mode)) {
    return fail(open_error(path, "is a directory, not an image file"));
  }
  if (!S_ISREG(st.st_mode)) {
    return fail(open_error(path, "is not a regular file (raw image files only)"));
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size == 0 || size % kSectorSize != 0) {
    return fail(open_error(
        path, fmt::format("size {} bytes is not a positive multiple of {}", size, kSectorSize)));
  }
  auto worker_ring = kernel::IoUring::create(ring_entries, kRequiredOps);
  if (!worker_ring) {
    return fail(open_error(path, "create io_uring", worker_ring.error()));
  }
  auto sync_ring = kernel::IoUring::create(4, kRequiredOps);
  if (!sync_ring) {
    return fail(open_error(path, "create io_uring", sync_ring.error()));
  }
  return std::unique_ptr<BlockBackend>(new BlockBackend(
      path, std::move(*fd), size, read_only, std::move(*worker_ring), std::move(*sync_ring)));
}

bool BlockBackend::hits_eio_range(const BlockOp& op, const BlockFaultInjection& faults) const {
  if (faults.eio_sector_count == 0 || op.kind == BlockOpKind::Flush) {
    return false;
  }
  const uint64_t first = op.offset / kSectorSize;
  const uint64_t end = first + (op.length() + kSectorSize - 1) / kSectorSize;
  const uint64_t eio_end = faults.eio_sector_count > UINT64_MAX - faults.eio_first_sector
                               ? UINT64_MAX
                               : faults.eio_first_sector + faults.eio_sector_count;
  return first < eio_end && faults.eio_first_sector < end;
}

VmmResult<void> BlockBackend::run(std::span<BlockOp> ops) {
  const BlockFaultInjection faults = fault_injection();
  if (faults.latency.count() > 0) {
    std::this_thread::sleep_for(faults.latency);
  }
  std::vector<BlockOp*> submit;
  submit.reserve(ops.size());
  for (BlockOp& op : ops) {
    if (hits_eio_range(op, faults)) {
      op.result = -EIO;
    } else {
      submit.push_back(&op);
    }
  }
  return submit_and_reap(worker_ring_, submit);
}

VmmResult<void> BlockBackend::submit_and_reap(kernel::IoUring& ring,
                                              std::span<BlockOp* const> ops) {
  // user_data = generation << 32 | index into `ops`: the index is the slab key of this
  // batch, and the generation keeps a completion left over from a failed batch from being
  // taken for one of ours.
  const uint64_t generation = batch_generation_.fetch_add(1) + 1;
  size_t next = 0;
  size_t in_flight = 0;
  while (next < ops.size() || in_flight > 0) {
    while (next < ops.size() && ring.sq_space_left() > 0) {
      auto sqe = ring.get_sqe();
      if (!sqe) {
        break;
      }
      BlockOp& op = *ops[next];
      const auto iov_count = static_cast<unsigned>(op.iov.size());
      switch (op.kind) {
        case BlockOpKind::Read:
          io_uring_prep_readv(*sqe, fd_.get(), op.iov.data(), iov_count, op.offset);
          break;
        case BlockOpKind::Write:
          io_uring_prep_writev(*sqe, fd_.get(), op.iov.data(), iov_count, op.offset);
          break;
        case BlockOpKind::Flush:
          io_uring_prep_fsync(*sqe, fd_.get(), 0);
          break;
      }
      (*sqe)->user_data = ((generation & 0xffff'ffffull) << 32) | next;
      ++next;
      ++in_flight;
    }
    if (in_flight == 0) {
      // Nothing could be queued although ops remain: waiting would hang forever.
      for (size_t i = next; i < ops.size(); ++i) {
        ops[i]->result = -EIO;
      }
      return fail(vmm_error(VmmErrc::DiskIo, "disk image " + path_ + ": io_uring queue full"));
    }
    auto completion = ring.wait();
    if (!completion) {
      for (BlockOp* op : ops) {
        op->result = -EIO;  // unknown fate: report every op of the batch as failed
      }
      return fail(vmm_error(VmmErrc::DiskIo, "disk image " + path_ + ": io_uring wait",
                            completion.error()));
    }
    const uint64_t index = completion->user_data & 0xffff'ffffull;
    if ((completion->user_data >> 32) != (generation & 0xffff'ffffull) || index >= next) {
      continue;  // stale completion of an abandoned batch
    }
    ops[index]->result = completion->res;
    --in_flight;
  }
  return {};
}

// NOLINTNEXTLINE(readability-non-const-parameter): reads land in `data` through the iovec
VmmResult<void> BlockBackend::sync_transfer(BlockOpKind kind, uint64_t offset, uint8_t* data,
                                            size_t len) {
  if (kind == BlockOpKind::Write && read_only_) {
    return fail(vmm_error(VmmErrc::DiskIo, "disk image " + path_ + " is open read-only"));
  }
  if (offset > size_ || len > size_ - offset) {
    return fail(vmm_error(VmmErrc::DiskIo, fmt::format("disk image {}: range {}+{} past end {}",
                                                       path_, offset, len, size_)));
  }
  if (len == 0 && kind != BlockOpKind::Flush) {
    return {};
  }
  std::lock_guard lock(sync_mu_);
  size_t done = 0;
  // Loop on short transfers; a zero-byte result past this point would spin, so it fails.
  do {
    BlockOp op{kind, offset + done, {iovec{data + done, len - done}}, 0};
    BlockOp* ptr = &op;
    auto ok = submit_and_reap(sync_ring_, std::span<BlockOp* const>(&ptr, 1));
    if (!ok) {
      return ok;
    }
    if (op.result < 0) {
      return fail(vmm_error(VmmErrc::DiskIo,
                            fmt::format("disk image {}: {} at {}", path_,
                                        kind == BlockOpKind::Read    ? "read"
                                        : kind == BlockOpKind::Write ? "write"
                                                                     : "fsync",
                                        offset + done),
                            kernel::make_error(static_cast<int>(-op.result), "io_uring")));
    }
    if (kind == BlockOpKind::Flush) {
      return {};
    }
    if (op.result == 0) {
      return fail(vmm_error(VmmErrc::DiskIo, fmt::format("disk image {}: unexpected end of file "
                                                         "at {}",
                                                         path_, offset + done)));
    }
    done += static_cast<size_t>(op.result);
  } while (done < len);
  return {};
}

VmmResult<void> BlockBackend::read_at(uint64_t offset, std::span<uint8_t> out) {
  return sync_transfer(BlockOpKind::Read, offset, out.data(), out.size());
}

VmmResult<void> BlockBackend::write_at(uint64_t offset, std::span<const uint8_t> data) {
  // SAFETY: writev only reads through the iovec; the const_cast is for struct iovec's type.
  return sync_transfer(BlockOpKind::Write, offset, const_cast<uint8_t*>(data.data()), data.size());
}

VmmResult<void> BlockBackend::flush() { return sync_transfer(BlockOpKind::Flush, 0, nullptr, 0); }

void BlockBackend::set_fault_injection(const BlockFaultInjection& faults) {
  std::lock_guard lock(faults_mu_);
  faults_ = faults;
}

BlockFaultInjection BlockBackend::fault_injection() const {
  std::lock_guard lock(faults_mu_);
  return faults_;
}

}  // namespace ferry::vmm
