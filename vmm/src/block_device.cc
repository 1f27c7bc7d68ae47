#include "block_device.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include "ferry/kernel-interfaces/le_bytes.h"
#include "ferry/vmm/devices/virtio_block.h"

namespace ferry::vmm {

namespace {

// One device object for the machine's life: a migrated state is loaded into it, so the
// bus's and the migration engine's references to it stay valid.
class VirtioBlockDevice final : public BlockDevice {
 public:
  explicit VirtioBlockDevice(std::unique_ptr<VirtioBlock> device) : device_(std::move(device)) {}

  MmioDevice& transport() override { return device_->mmio(); }
  void quiesce() override { device_->quiesce(); }
  void unquiesce() override { device_->resume(); }

  VmmResult<std::vector<uint8_t>> save_state() override {
    std::vector<uint8_t> out;
    ByteWriter w(out);
    encode_virtio_block_state(device_->save(), w);
    return out;
  }

  VmmResult<void> restore_state(std::span<const uint8_t> blob) override {
    ByteReader r(blob);
    auto state = decode_virtio_block_state(r);
    if (!state) {
      return fail(state.error());
    }
    if (!r.at_end()) {
      return fail(vmm_error(VmmErrc::RestoreState, "virtio-blk state: trailing bytes"));
    }
    if (auto loaded = device_->load_state(*state); !loaded) {
      return fail(loaded.error());
    }
    return {};
  }

  migration::MigratableDisk& migratable() override { return *device_; }
  void set_fault_injection(const BlockFaultInjection& faults) override {
    device_->set_fault_injection(faults);
  }

 private:
  std::unique_ptr<VirtioBlock> device_;
};

}  // namespace

VmmResult<std::unique_ptr<BlockDevice>> BlockDevice::create(GuestMemory& memory, IrqLine& irq,
                                                            const DiskConfig& config) {
  struct stat st {};
  if (::stat(config.path.c_str(), &st) != 0) {
    return fail(vmm_error(VmmErrc::OpenDisk, fmt::format("disk image '{}'", config.path),
                          kernel::last_error("stat")));
  }
  // Root may write anyway, so look at the mode: an image its owner marked read-only is
  // attached only when asked for read-only, never silently.
  if (!config.read_only && (st.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)) == 0) {
    return fail(vmm_error(VmmErrc::OpenDisk,
                          fmt::format("disk image '{}' is read-only; attach it with '{},ro'",
                                      config.path, config.path)));
  }
  BlockConfig block;
  block.path = config.path;
  block.read_only = config.read_only;
  auto device = VirtioBlock::create(memory, irq, block);
  if (!device) {
    return fail(device.error());
  }
  return std::unique_ptr<BlockDevice>(new VirtioBlockDevice(std::move(*device)));
}

}  // namespace ferry::vmm
