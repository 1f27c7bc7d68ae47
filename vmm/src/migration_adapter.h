// MigrationAdapter: the KVM machine seen through migration's MigratableVm interface.
// RAM regions map 1:1 to GuestMemory regions; the dirty set is the KVM dirty log plus
// the pages the VMM itself wrote (device DMA, used rings).
#pragma once

#include "ferry/migration/vm_interface.h"

namespace ferry::vmm {

class KvmMachine;

class MigrationAdapter final : public migration::MigratableVm {
 public:
  explicit MigrationAdapter(KvmMachine& machine) : machine_(machine) {}

  migration::VmDescription describe() const override;
  std::vector<migration::RamRegion> ram_regions() const override;
  size_t disk_count() const override;
  migration::MigratableDisk& disk(size_t index) override;
  migration::VmResult<void> start_dirty_log() override;
  migration::VmResult<void> harvest_dirty(migration::DirtyBitmap& bitmap) override;
  migration::VmResult<void> stop_dirty_log() override;
  migration::VmResult<void> pause() override;
  migration::VmResult<void> resume() override;
  void set_throttle_percent(unsigned percent) override;
  migration::VmResult<std::vector<uint8_t>> save_machine_state() override;
  migration::VmResult<void> load_machine_state(std::span<const uint8_t> blob) override;

 private:
  KvmMachine& machine_;
};

}  // namespace ferry::vmm
