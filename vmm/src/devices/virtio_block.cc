#include "ferry/vmm/devices/virtio_block.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>

namespace ferry::vmm {

namespace {

struct BlkReqHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
static_assert(sizeof(BlkReqHeader) == 16);

// Header + largest data + status byte: anything longer fails in the virtqueue walk.
constexpr uint64_t kMaxChainBytes = kMaxBlockRequestBytes + sizeof(BlkReqHeader) + 1;

/// The buffers covering bytes [offset, offset + len) of `bufs` taken end to end.
std::vector<DescBuffer> slice(std::span<const DescBuffer> bufs, uint64_t offset, uint64_t len) {
  std::vector<DescBuffer> out;
  for (const DescBuffer& b : bufs) {
    if (len == 0) {
      break;
    }
    if (offset >= b.len) {
      offset -= b.len;
      continue;
    }
    const uint64_t take = std::min<uint64_t>(b.len - offset, len);
    out.push_back(DescBuffer{b.addr + offset, static_cast<uint32_t>(take), b.device_writable});
    offset = 0;
    len -= take;
  }
  return out;
}

/// Copies `out.size()` bytes from the start of `bufs` (already checked to be in RAM).
bool gather(const GuestMemory& mem, std::span<const DescBuffer> bufs, std::span<uint8_t> out) {
  size_t done = 0;
  for (const DescBuffer& b : slice(bufs, 0, out.size())) {
    if (!mem.read(b.addr, out.subspan(done, b.len))) {
      return false;
    }
    done += b.len;
  }
  return done == out.size();
}

/// Copies `data` to the start of `bufs`; each write marks the pages dirty.
bool scatter(GuestMemory& mem, std::span<const DescBuffer> bufs, std::span<const uint8_t> data) {
  size_t done = 0;
  for (const DescBuffer& b : slice(bufs, 0, data.size())) {
    if (!mem.write(b.addr, data.subspan(done, b.len))) {
      return false;
    }
    done += b.len;
  }
  return done == data.size();
}

uint64_t total_len(std::span<const DescBuffer> bufs) {
  uint64_t total = 0;
  for (const DescBuffer& b : bufs) {
    total += b.len;
  }
  return total;
}

migration::VmPortError port_error(const VmmError& e) { return {e.message()}; }

}  // namespace

struct VirtioBlock::Counters {
  std::atomic<uint64_t> popped{0}, requests{0}, reads{0}, writes{0}, flushes{0}, get_ids{0};
  std::atomic<uint64_t> bytes_read{0}, bytes_written{0}, io_errors{0}, unsupported{0};
  std::atomic<uint64_t> bad_chains{0}, queue_errors{0};
};

struct VirtioBlock::Request {
  uint16_t head = 0;
  uint32_t type = 0;
  uint64_t sector = 0;
  std::vector<DescBuffer> data;
  std::optional<uint64_t> status_addr;  // none: the chain had no usable status byte
  uint8_t status = kVirtioBlkSOk;
  uint32_t used_len = 0;
  bool needs_io = false;
};

VirtioBlock::VirtioBlock(GuestMemory& mem, IrqLine& irq, std::unique_ptr<BlockBackend> backend,
                         const BlockConfig& config, kernel::EventFd notify)
    : mem_(mem),
      backend_(std::move(backend)),
      dirty_(backend_->size_bytes(), kDefaultTrackingBlockSize),
      serial_(config.serial.substr(0, kVirtioBlkIdBytes)),
      queue_max_(config.queue_size),
      notify_(std::move(notify)),
      transport_(*this, irq),
      counters_(std::make_unique<Counters>()) {}

VmmResult<std::unique_ptr<VirtioBlock>> VirtioBlock::create(GuestMemory& mem, IrqLine& irq,
                                                            const BlockConfig& config) {
  if (config.queue_size < 2 || config.queue_size > 1024 ||
      !std::has_single_bit(config.queue_size)) {
    return fail(vmm_error(VmmErrc::BadConfig,
                          fmt::format("virtio-blk queue size {} is not a power of two in 2..1024",
                                      config.queue_size)));
  }
  auto backend = BlockBackend::open(config.path, config.read_only, config.queue_size);
  if (!backend) {
    return fail(backend.error());
  }
  auto notify = kernel::EventFd::create();
  if (!notify) {
    return fail(vmm_error(VmmErrc::OpenDisk, "virtio-blk notify eventfd", notify.error()));
  }
  std::unique_ptr<VirtioBlock> dev(
      new VirtioBlock(mem, irq, std::move(*backend), config, std::move(*notify)));
  dev->start_worker();
  return dev;
}

VmmResult<std::unique_ptr<VirtioBlock>> VirtioBlock::restore(GuestMemory& mem, IrqLine& irq,
                                                             const BlockConfig& config,
                                                             const VirtioBlockState& state) {
  auto dev = create(mem, irq, config);
  if (!dev) {
    return dev;
  }
  if (auto ok = (*dev)->load_state(state); !ok) {
    return fail(ok.error());
  }
  return dev;
}

VmmResult<void> VirtioBlock::load_state(const VirtioBlockState& state) {
  quiesce();
  if (state.capacity_sectors != capacity_sectors() || state.read_only != read_only()) {
    return fail(vmm_error(
        VmmErrc::RestoreState,
        fmt::format("virtio-blk state is for a {}-sector{} disk; {} has {} sectors{}",
                    state.capacity_sectors, state.read_only ? " read-only" : "",
                    backend_->path(), capacity_sectors(), read_only() ? " (read-only)" : "")));
  }
  return transport_.restore(state.transport);
}

VirtioBlock::~VirtioBlock() {
  stop_.store(true);
  (void)notify_.signal();
  if (worker_.joinable()) {
    worker_.join();
  }
}

void VirtioBlock::start_worker() {
  worker_ = std::thread([this] { worker_loop(); });
}

uint64_t VirtioBlock::device_features() const {
  return kVirtioFVersion1 | kVirtioBlkFSegMax | kVirtioBlkFFlush |
         (read_only() ? kVirtioBlkFRo : 0);
}

void VirtioBlock::read_config(uint64_t offset, std::span<uint8_t> data) const {
  // struct virtio_blk_config: capacity (le64), size_max (le32), seg_max (le32),
  // geometry (4 bytes), blk_size (le32). Only capacity and seg_max are offered.
  std::array<uint8_t, kVirtioBlkConfigBytes> config{};
  std::vector<uint8_t> bytes;
  ByteWriter w(bytes);
  w.u64(capacity_sectors());
  w.u32(0);
  // Two descriptors of every chain hold the header and the status byte (Linux adds 2).
  w.u32(static_cast<uint32_t>(queue_max_ - 2));
  std::copy(bytes.begin(), bytes.end(), config.begin());
  if (offset < config.size() && data.size() <= config.size() - offset) {
    std::copy_n(config.begin() + static_cast<std::ptrdiff_t>(offset), data.size(), data.begin());
  }
}

bool VirtioBlock::activate(uint64_t /*features*/, std::span<const VirtqueueState> queues) {
  {
    std::unique_lock lock(mu_);
    wait_idle(lock);
    if (queues.empty() || !queues[0].ready) {
      return false;
    }
    auto queue = Virtqueue::create(mem_, queues[0], kMaxChainBytes);
    if (!queue) {
      counters_->queue_errors.fetch_add(1);
      return false;
    }
    queue_.emplace(*queue);
    broken_ = false;
  }
  // Chains may already wait on the ring (a restored device): look at once.
  (void)notify_.signal();
  return true;
}

void VirtioBlock::notify_queue(uint32_t /*index*/) {
  // Never blocks: the eventfd counter saturates only after 2^64-2 notifies.
  (void)notify_.signal();
}

void VirtioBlock::reset() {
  std::unique_lock lock(mu_);
  ++holds_;
  wait_idle(lock);
  queue_.reset();
  broken_ = false;
  --holds_;
}

void VirtioBlock::wait_idle(std::unique_lock<std::mutex>& lock) const {
  idle_cv_.wait(lock, [this] { return !busy_; });
}

void VirtioBlock::quiesce() {
  std::unique_lock lock(mu_);
  paused_ = true;
  wait_idle(lock);
}

void VirtioBlock::resume() {
  {
    std::lock_guard lock(mu_);
    paused_ = false;
  }
  (void)notify_.signal();
}

bool VirtioBlock::quiesced() const {
  std::lock_guard lock(mu_);
  return paused_ && !busy_;
}

VirtioBlockState VirtioBlock::save() const {
  VirtioBlockState state;
  state.capacity_sectors = capacity_sectors();
  state.read_only = read_only();
  // Transport first: its lock orders before mu_ (reset() is called with it held).
  state.transport = transport_.save();
  std::unique_lock lock(mu_);
  wait_idle(lock);
  if (queue_ && !state.transport.queues.empty()) {
    const VirtqueueState progress = queue_->state();
    state.transport.queues[0].last_avail_idx = progress.last_avail_idx;
    state.transport.queues[0].used_idx = progress.used_idx;
  }
  return state;
}

VirtioBlockStats VirtioBlock::stats() const {
  const Counters& c = *counters_;
  VirtioBlockStats s;
  s.popped = c.popped.load();
  s.requests = c.requests.load();
  s.reads = c.reads.load();
  s.writes = c.writes.load();
  s.flushes = c.flushes.load();
  s.get_ids = c.get_ids.load();
  s.bytes_read = c.bytes_read.load();
  s.bytes_written = c.bytes_written.load();
  s.io_errors = c.io_errors.load();
  s.unsupported = c.unsupported.load();
  s.bad_chains = c.bad_chains.load();
  s.queue_errors = c.queue_errors.load();
  s.ignored_mmio = transport_.ignored_accesses();
  return s;
}

void VirtioBlock::set_fault_injection(const BlockFaultInjection& faults) {
  backend_->set_fault_injection(faults);
}

// ---- worker thread ----

void VirtioBlock::worker_loop() {
  while (!stop_.load()) {
    auto woken = notify_.consume(-1);
    if (stop_.load()) {
      return;
    }
    if (!woken) {
      // poll() on our own eventfd failing is not expected; back off instead of spinning.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    drain_available();
  }
}

void VirtioBlock::drain_available() {
  for (;;) {
    std::vector<Request> batch;
    {
      std::lock_guard lock(mu_);
      if (paused_ || holds_ > 0 || !queue_ || broken_ || stop_.load()) {
        return;
      }
      busy_ = true;
      pop_batch(batch);
      if (batch.empty()) {
        busy_ = false;
        idle_cv_.notify_all();
        return;
      }
    }
    execute(batch);
    complete(batch);
  }
}

bool VirtioBlock::pop_batch(std::vector<Request>& batch) {
  while (batch.size() < queue_max_) {
    auto popped = queue_->pop();
    if (!popped) {
      // The driver broke the ring itself: stop using it until it resets the device.
      broken_ = true;
      counters_->queue_errors.fetch_add(1);
      transport_.signal_needs_reset();
      return false;
    }
    if (!*popped) {
      return true;
    }
    counters_->popped.fetch_add(1);
    PoppedChain& chain = **popped;
    if (!chain.chain) {
      // A malformed chain fails alone; without a trustworthy status byte the device
      // completes it with used length 0.
      counters_->bad_chains.fetch_add(1);
      Request bad;
      bad.head = chain.head;
      batch.push_back(std::move(bad));
      continue;
    }
    batch.push_back(parse(chain.head, *chain.chain));
  }
  return true;
}

VirtioBlock::Request VirtioBlock::parse(uint16_t head, const DescriptorChain& chain) {
  Request r;
  r.head = head;
  const auto first_writable = std::find_if(chain.buffers.begin(), chain.buffers.end(),
                                           [](const DescBuffer& b) { return b.device_writable; });
  const std::span<const DescBuffer> readable(chain.buffers.begin(), first_writable);
  const std::span<const DescBuffer> writable(first_writable, chain.buffers.end());
  if (chain.writable_bytes == 0) {
    counters_->bad_chains.fetch_add(1);  // nowhere to put the status: used length 0
    return r;
  }
  r.status_addr = slice(writable, chain.writable_bytes - 1, 1).front().addr;
  r.used_len = 1;
  auto ioerr = [&r]() -> Request& {
    r.status = kVirtioBlkSIoErr;
    return r;
  };
  BlkReqHeader header{};
  // SAFETY: BlkReqHeader is trivially copyable; the span covers exactly its bytes.
  if (chain.readable_bytes < sizeof(header) ||
      !gather(mem_, readable, {reinterpret_cast<uint8_t*>(&header), sizeof(header)})) {
    return ioerr();
  }
  r.type = header.type;
  r.sector = header.sector;
  const uint64_t data_in = chain.writable_bytes - 1;
  const uint64_t data_out = chain.readable_bytes - sizeof(header);
  switch (header.type) {
    case kVirtioBlkTIn:
    case kVirtioBlkTGetId:
      if (data_out != 0) {
        return ioerr();
      }
      r.data = slice(writable, 0, data_in);
      break;
    case kVirtioBlkTOut:
      if (data_in != 0 || read_only()) {
        return ioerr();
      }
      r.data = slice(readable, sizeof(header), data_out);
      break;
    case kVirtioBlkTFlush:
      r.needs_io = true;
      return r;
    default:
      r.status = kVirtioBlkSUnsupp;
      return r;
  }
  if (header.type == kVirtioBlkTGetId) {
    return r;
  }
  const uint64_t len = total_len(r.data);
  const uint64_t capacity = capacity_sectors();
  // Written so that hostile sector values cannot overflow.
  if (len % kSectorSize != 0 || r.sector > capacity || len / kSectorSize > capacity - r.sector) {
    return ioerr();
  }
  r.needs_io = len > 0;
  return r;
}

void VirtioBlock::answer_get_id(Request& r) {
  std::array<uint8_t, kVirtioBlkIdBytes> id{};
  std::copy(serial_.begin(), serial_.end(), id.begin());
  const size_t n = std::min<uint64_t>(id.size(), total_len(r.data));
  r.status = scatter(mem_, r.data, std::span(id).first(n)) ? kVirtioBlkSOk : kVirtioBlkSIoErr;
  r.used_len = static_cast<uint32_t>(n + 1);
}

std::optional<BlockOp> VirtioBlock::make_data_op(const Request& r) {
  const bool is_read = r.type == kVirtioBlkTIn;
  BlockOp op{is_read ? BlockOpKind::Read : BlockOpKind::Write, r.sector * kSectorSize, {}, 0};
  for (const DescBuffer& b : r.data) {
    // Views, never raw arithmetic on guest addresses: each one is bounds-checked again.
    if (is_read) {
      auto view = mem_.writable_view(b.addr, b.len);
      if (!view) {
        return std::nullopt;
      }
      op.iov.push_back(iovec{view->data(), b.len});
    } else {
      auto view = mem_.view(b.addr, b.len);
      if (!view) {
        return std::nullopt;
      }
      // SAFETY: writev only reads through iov_base; iovec just has no const variant.
      op.iov.push_back(iovec{const_cast<uint8_t*>(view->data()), b.len});
    }
  }
  return op;
}

void VirtioBlock::finish_data_op(Request& r, const BlockOp& op) {
  const uint64_t len = op.length();
  const bool ok = op.result >= 0 && static_cast<uint64_t>(op.result) == len;
  if (r.type == kVirtioBlkTIn) {
    // The kernel wrote guest RAM behind GuestMemory's back: mark it again now that the
    // data is there, or a harvest between view and completion would miss it.
    for (const DescBuffer& b : r.data) {
      mem_.mark_dirty(b.addr, b.len);
    }
    r.used_len = ok ? static_cast<uint32_t>(len + 1) : 1;
    counters_->reads.fetch_add(1);
    counters_->bytes_read.fetch_add(ok ? len : 0);
  } else {
    // Marked after completion (even a failed write may have changed blocks) so a
    // harvest racing the write still sees it in a later round.
    dirty_.mark(op.offset, len);
    counters_->writes.fetch_add(1);
    counters_->bytes_written.fetch_add(ok ? len : 0);
  }
  r.status = ok ? kVirtioBlkSOk : kVirtioBlkSIoErr;
}

void VirtioBlock::execute(std::vector<Request>& batch) {
  std::vector<BlockOp> data_ops;
  std::vector<BlockOp> flush_ops;
  std::vector<Request*> data_reqs;
  std::vector<Request*> flush_reqs;
  for (Request& r : batch) {
    if (r.status != kVirtioBlkSOk || !r.status_addr) {
      continue;
    }
    if (r.type == kVirtioBlkTGetId) {
      answer_get_id(r);
    } else if (r.needs_io && r.type == kVirtioBlkTFlush) {
      flush_ops.push_back(BlockOp{BlockOpKind::Flush, 0, {}, 0});
      flush_reqs.push_back(&r);
    } else if (r.needs_io) {
      auto op = make_data_op(r);
      if (!op) {
        r.status = kVirtioBlkSIoErr;
        continue;
      }
      data_ops.push_back(std::move(*op));
      data_reqs.push_back(&r);
    }
  }
  // Reads and writes first, flushes after them: a flush then covers every write popped
  // before it, not just the ones the ring happened to finish first. A failed ring marks
  // every op of its batch -EIO, which answers IOERR below.
  (void)backend_->run(data_ops);
  (void)backend_->run(flush_ops);
  for (size_t i = 0; i < data_reqs.size(); ++i) {
    finish_data_op(*data_reqs[i], data_ops[i]);
  }
  for (size_t i = 0; i < flush_reqs.size(); ++i) {
    flush_reqs[i]->status = flush_ops[i].result == 0 ? kVirtioBlkSOk : kVirtioBlkSIoErr;
    counters_->flushes.fetch_add(1);
  }
}

void VirtioBlock::complete(std::vector<Request>& batch) {
  std::lock_guard lock(mu_);
  bool pushed = false;
  for (const Request& r : batch) {
    counters_->requests.fetch_add(1);
    if (r.type == kVirtioBlkTGetId && r.status_addr) {
      counters_->get_ids.fetch_add(1);
    }
    if (r.status == kVirtioBlkSIoErr) {
      counters_->io_errors.fetch_add(1);
    } else if (r.status == kVirtioBlkSUnsupp) {
      counters_->unsupported.fetch_add(1);
    }
    if (r.status_addr) {
      (void)mem_.write_obj(*r.status_addr, r.status);
    }
    if (!queue_->push_used(r.head, r.used_len)) {
      broken_ = true;
      counters_->queue_errors.fetch_add(1);
      transport_.signal_needs_reset();
      break;
    }
    pushed = true;
  }
  if (pushed && queue_->should_interrupt()) {
    transport_.signal_used_buffer();
  }
  busy_ = false;
  idle_cv_.notify_all();
}

// ---- migration::MigratableDisk ----

migration::VmResult<void> VirtioBlock::start_dirty_tracking() {
  dirty_.start();
  return {};
}

migration::VmResult<void> VirtioBlock::harvest_dirty(migration::DirtyBitmap& bitmap) {
  dirty_.harvest(bitmap);
  return {};
}

migration::VmResult<void> VirtioBlock::stop_dirty_tracking() {
  dirty_.stop();
  return {};
}

migration::VmResult<void> VirtioBlock::read_at(uint64_t offset, std::span<uint8_t> out) {
  return backend_->read_at(offset, out).map_error(port_error);
}

migration::VmResult<void> VirtioBlock::write_at(uint64_t offset, std::span<const uint8_t> data) {
  return backend_->write_at(offset, data).map_error(port_error);
}

migration::VmResult<void> VirtioBlock::flush() { return backend_->flush().map_error(port_error); }

}  // namespace ferry::vmm
