#include "block_device.h"

namespace ferry::vmm {

VmmResult<std::unique_ptr<BlockDevice>> BlockDevice::create(GuestMemory&, IrqLine&,
                                                            const DiskConfig& config) {
  // Wired to the virtio-blk device once it lands (in progress in vmm/src/devices/).
  return fail(vmm_error(VmmErrc::OpenDisk,
                        "disk '" + config.path + "': virtio-blk is not wired into this build"));
}

}  // namespace ferry::vmm
