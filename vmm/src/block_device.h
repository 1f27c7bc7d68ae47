// BlockDevice: one guest disk as the machine sees it — the virtio-mmio transport on the
// bus, the virtio-blk device behind it, and the hooks the machine needs for pause,
// state save/restore and disk migration.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "ferry/migration/vm_interface.h"
#include "ferry/vmm/bus.h"
#include "ferry/vmm/devices/block_backend.h"
#include "ferry/vmm/guest_memory.h"
#include "ferry/vmm/vm_config.h"

namespace ferry::vmm {

class BlockDevice {
 public:
  static VmmResult<std::unique_ptr<BlockDevice>> create(GuestMemory& memory, IrqLine& irq,
                                                        const DiskConfig& config);
  virtual ~BlockDevice() = default;
  virtual MmioDevice& transport() = 0;
  /// Stops taking requests and waits for in-flight ones (pause, state save).
  virtual void quiesce() = 0;
  virtual void unquiesce() = 0;
  virtual VmmResult<std::vector<uint8_t>> save_state() = 0;
  virtual VmmResult<void> restore_state(std::span<const uint8_t> blob) = 0;
  virtual migration::MigratableDisk& migratable() = 0;
  /// Test and demo fault injection on guest requests (latency, EIO ranges); off by default.
  virtual void set_fault_injection(const BlockFaultInjection& faults) = 0;
};

}  // namespace ferry::vmm
