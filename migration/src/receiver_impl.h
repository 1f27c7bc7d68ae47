// Private to the receiver: the Receiver state machine class, split over receiver.cc
// (channels, hello, driver, cleanup), receiver_data.cc (applying pages and extents on
// every channel) and receiver_commit.cc (control records, verification, commit).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "ferry/migration/dirty_set.h"
#include "ferry/migration/page_codec.h"
#include "ferry/migration/protocol.h"
#include "ferry/migration/receiver.h"
#include "ferry/migration/wire.h"

namespace ferry::migration::detail {

using Status = Result<void, MigrationError>;

/// Which pages of one aligned 64-page window are holes: one mincore call per window
/// instead of one per zero page (absent_pages.h).
struct HoleWindow {
  uint64_t base = ~uint64_t{0};
  uint64_t absent = 0;  // bit i: page base + i is a hole
};

struct DestDisk {
  MigratableDisk* disk = nullptr;
  uint64_t size = 0;
  uint32_t block_size = 0;
  std::vector<uint64_t> block_hash;  // Tracked digest: hash of what we wrote, per block
  std::mutex io;
};

/// The destination state machine; one instance per migrate_in call.
class Receiver {
 public:
  Receiver(std::vector<std::unique_ptr<ByteStream>> channels, const VmFactory& factory,
           const ReceiverOptions& options)
      : given_(std::move(channels)), factory_(factory), opt_(options) {}

  Result<ReceivedVm, MigrationError> run();

 private:
  Status identify_channels();
  Status accept_hello();
  Status refuse(ByteStream& stream, const std::string& reason);
  Status control_loop();
  Status handle_control(RawRecord& rec, BlockDecoder& decoder, bool& digest_seen);
  Status on_round_end(std::span<const uint8_t> payload, bool blackout);
  Status on_blackout_begin(std::span<const uint8_t> payload, bool blackout);
  Status on_cancel(std::span<const uint8_t> payload);
  Status verify_memory();
  Status verify_disks();
  Status verify_and_ready();
  Status await_commit();
  Status apply_data(const RawRecord& rec, BlockDecoder& decoder, uint32_t channel);
  Status apply_pages(std::span<const uint8_t> payload, BlockDecoder& decoder, uint64_t& pages,
                     HoleWindow& holes);
  /// A round-0 Zero page that no physical page backs yet (and so already reads as zero).
  bool is_hole(uint64_t index, uint64_t hash, HoleWindow& holes) const;
  void prefault_data_pages(std::span<const uint8_t> entries, uint32_t count) const;
  Status apply_disk(std::span<const uint8_t> payload, BlockDecoder& decoder);
  Status check_done(const ChannelDone& done, uint32_t channel);
  void data_channel(uint32_t index);
  void record_failure(const MigrationError& e);
  Status first_failure();
  MigrationError fail_cleanup(MigrationError e);
  void drain(ByteStream& stream);
  void enter_phase(MigrationPhase phase);
  MigrationError proto(const std::string& detail) { return protocol_failure(phase_, detail); }

  std::vector<std::unique_ptr<ByteStream>> given_;
  const VmFactory& factory_;
  const ReceiverOptions& opt_;
  std::vector<std::unique_ptr<ByteStream>> ch_;  // by channel index
  std::optional<Hello> hello_;
  std::vector<ChannelJoin> joins_;
  std::unique_ptr<MigratableVm> vm_;
  GuestPages pages_;
  std::vector<DestDisk> disks_;
  std::unique_ptr<std::atomic<uint32_t>[]> page_round_;
  std::vector<uint64_t> page_hash_;
  bool absent_is_zero_ = false;  // holes read as zero (absent_pages.h)
  uint64_t zero_page_hash_ = 0;
  std::vector<std::thread> threads_;
  std::vector<uint8_t> channel_done_;  // written by each channel's own thread
  std::vector<uint64_t> channel_records_;
  std::vector<uint64_t> channel_pages_;
  std::vector<HoleWindow> channel_holes_;  // one per channel, used by its own thread
  std::vector<uint8_t> machine_state_;
  bool have_state_ = false;
  Digest digest_;
  MigrationReport report_;
  std::atomic<MigrationPhase> phase_{MigrationPhase::PreMigration};
  std::atomic<uint64_t> zero_{0}, same_{0}, raw_{0}, zstd_{0}, disk_bytes_{0}, wire_bytes_{0};
  std::mutex fail_mu_;
  std::optional<MigrationError> failure_;
  std::atomic<bool> failed_{false};
  bool sent_error_ = false;
};

}  // namespace ferry::migration::detail
