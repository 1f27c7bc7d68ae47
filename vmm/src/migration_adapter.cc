#include "migration_adapter.h"

#include "block_device.h"
#include "kvm_machine.h"
#include "machine_state.h"

namespace ferry::vmm {

namespace {
template <class T>
migration::VmResult<T> to_port(VmmResult<T> result) {
  if (!result) {
    return fail(migration::VmPortError{result.error().message()});
  }
  if constexpr (std::is_void_v<T>) {
    return {};
  } else {
    return std::move(*result);
  }
}
}  // namespace

migration::VmDescription MigrationAdapter::describe() const {
  migration::VmDescription d;
  d.memory_bytes = machine_.config().memory_bytes;
  d.vcpus = machine_.config().vcpus;
  for (auto& disk : machine_.disks()) {
    d.disk_sizes.push_back(disk->migratable().size_bytes());
  }
  d.config_blob = encode_config(machine_.config());
  return d;
}

std::vector<migration::RamRegion> MigrationAdapter::ram_regions() const {
  std::vector<migration::RamRegion> out;
  for (const GuestRegion& region : machine_.memory().regions()) {
    out.push_back({region.gpa, region.size, region.host});
  }
  return out;
}

size_t MigrationAdapter::disk_count() const { return machine_.disks().size(); }

migration::MigratableDisk& MigrationAdapter::disk(size_t index) {
  return machine_.disks().at(index)->migratable();
}

migration::VmResult<void> MigrationAdapter::start_dirty_log() {
  return to_port(machine_.dirty_log().start());
}

migration::VmResult<void> MigrationAdapter::harvest_dirty(migration::DirtyBitmap& bitmap) {
  const size_t words = (machine_.memory().page_count() + 63) / 64;
  if (bitmap.size() < words) {
    bitmap.resize(words, 0);
  }
  return to_port(machine_.dirty_log().harvest(bitmap));
}

migration::VmResult<void> MigrationAdapter::stop_dirty_log() {
  return to_port(machine_.dirty_log().stop());
}

migration::VmResult<void> MigrationAdapter::pause() { return to_port(machine_.pause()); }

migration::VmResult<void> MigrationAdapter::resume() { return to_port(machine_.resume()); }

void MigrationAdapter::set_throttle_percent(unsigned percent) {
  machine_.set_throttle_percent(percent);
}

migration::VmResult<std::vector<uint8_t>> MigrationAdapter::save_machine_state() {
  if (!machine_.paused()) {
    return fail(migration::VmPortError{"machine state saved while the guest runs"});
  }
  return to_port(vmm::save_machine_state(machine_));
}

migration::VmResult<void> MigrationAdapter::load_machine_state(std::span<const uint8_t> blob) {
  if (!machine_.paused()) {
    return fail(migration::VmPortError{"machine state loaded while the guest runs"});
  }
  return to_port(vmm::load_machine_state(machine_, blob));
}

}  // namespace ferry::vmm
