// Fuzzes the destination state machine (migrate_in) with an arbitrary byte stream on its
// one channel, against the fake VM of the unit tests. The harness rewrites the XXH3-64
// checksums the stream carries (record payloads, Raw and Zero page entries) so mutations
// get past the checksum to the state machine; the checksum checks themselves are covered
// by the wire fuzzer and the unit tests. Seeds are whole captured migrations.
#include <xxhash.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "fakes/fake_vm.h"
#include "ferry/migration/receiver.h"
#include "ferry/migration/wire.h"

namespace {

using namespace ferry::migration;

// Reads come from the fuzz input, then EOF; writes are accepted and dropped.
class InputStream final : public ByteStream {
 public:
  explicit InputStream(std::vector<uint8_t> bytes) : in_(std::move(bytes)) {}
  StreamResult<void> write_all(std::span<const uint8_t>) override { return {}; }
  StreamResult<void> read_exact(std::span<uint8_t> out) override {
    if (in_.size() - pos_ < out.size()) {
      pos_ = in_.size();
      return ferry::fail(StreamError{StreamErrc::Closed, {}, "end of fuzz input"});
    }
    std::copy_n(in_.begin() + static_cast<std::ptrdiff_t>(pos_), out.size(), out.begin());
    pos_ += out.size();
    return {};
  }
  StreamResult<void> flush() override { return {}; }
  void set_timeout(std::chrono::milliseconds) override {}
  void shutdown() override { pos_ = in_.size(); }
  std::string peer() const override { return "fuzz"; }

 private:
  std::vector<uint8_t> in_;
  size_t pos_ = 0;
};

uint32_t le32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | uint32_t{p[3]} << 24; }
void put_le64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    p[i] = static_cast<uint8_t>(v >> (8 * i));
  }
}

// Page entries inside a PageBatch payload: Raw bodies and Zero pages get their real hash.
void fix_page_hashes(uint8_t* p, size_t n) {
  static const std::vector<uint8_t> kZero(kWirePageSize, 0);
  if (n < kPageBatchHeaderSize) {
    return;
  }
  size_t pos = kPageBatchHeaderSize;
  for (uint32_t i = 0, count = le32(p + 4); i < count && n - pos >= kPageEntrySize; ++i) {
    uint8_t* e = p + pos;
    const uint32_t len = le32(e + 20);
    pos += kPageEntrySize;
    if (n - pos < len) {
      return;
    }
    const auto codec = static_cast<PageCodec>(e[24]);
    if (codec == PageCodec::Zero) {
      put_le64(e + 8, XXH3_64bits(kZero.data(), kZero.size()));
    } else if (codec == PageCodec::Raw && len == kWirePageSize) {
      put_le64(e + 8, XXH3_64bits(p + pos, len));
    }
    pos += len;
  }
}

void fix_checksums(std::vector<uint8_t>& s) {
  size_t pos = 0;
  while (s.size() - pos >= kRecordHeaderSize) {
    uint8_t* h = s.data() + pos;
    const uint32_t len = le32(h + 4);
    if (s.size() - pos - kRecordHeaderSize < len) {
      return;
    }
    if ((h[0] | h[1] << 8) == static_cast<int>(RecordType::PageBatch)) {
      fix_page_hashes(h + kRecordHeaderSize, len);
    }
    put_le64(h + 8, XXH3_64bits(h + kRecordHeaderSize, len));
    pos += kRecordHeaderSize + len;
  }
}

// The fake VM allocates what the config blob asks for; keep that small.
VmFactory small_factory() {
  auto inner = ferry::testing::fake_factory(std::make_shared<std::atomic<int>>(0));
  return [inner](const VmDescription& d) -> VmResult<std::unique_ptr<MigratableVm>> {
    ferry::testing::FakeVmConfig c;
    if (!ferry::testing::decode_config(d.config_blob, c)) {
      return ferry::fail(VmPortError{"config blob is not a fake VM config"});
    }
    // The local VMM is trusted to build sane RAM (page-aligned, sorted, disjoint).
    uint64_t total = 0, end = 0;
    for (const auto& r : c.regions) {
      if (r.gpa % 4096 != 0 || r.size % 4096 != 0 || r.size == 0 || r.gpa < end ||
          r.size > (4u << 20) || r.gpa > (1ull << 40)) {
        return ferry::fail(VmPortError{"fake VM regions not sane"});
      }
      end = r.gpa + r.size;
      total += r.size;
    }
    for (uint64_t disk : c.disk_sizes) {
      total += std::min<uint64_t>(disk, 1ull << 40);
    }
    if (total > (4u << 20) || c.disk_block == 0 || c.vcpus == 0 || c.vcpus > 8) {
      return ferry::fail(VmPortError{"fake VM too large for the fuzzer"});
    }
    return inner(d);
  };
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const VmFactory factory = small_factory();
  std::vector<uint8_t> bytes(data, data + size);
  fix_checksums(bytes);
  std::vector<std::unique_ptr<ByteStream>> channels;
  channels.push_back(std::make_unique<InputStream>(std::move(bytes)));
  ReceiverOptions options;
  options.max_memory_bytes = 4u << 20;
  options.max_vcpus = 8;
  options.max_disk_bytes = 1u << 20;
  options.io_timeout = std::chrono::milliseconds(50);
  options.commit_timeout = std::chrono::milliseconds(50);
  (void)migrate_in(std::move(channels), factory, options);
  return 0;
}
