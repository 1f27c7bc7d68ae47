// Runs a source and a destination against each other over in-memory streams, each on its
// own thread, and collects both results. Shared by the migration unit tests.
#pragma once

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "fakes/fake_vm.h"
#include "fakes/mem_stream.h"
#include "ferry/migration/receiver.h"
#include "ferry/migration/sender.h"

namespace ferry::testing {

struct RunResult {
  std::optional<Result<migration::MigrationReport, migration::MigrationError>> out;
  std::optional<Result<migration::ReceivedVm, migration::MigrationError>> in;
  std::shared_ptr<std::atomic<int>> dest_resumes = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<uint64_t>> to_dest_bytes =
      std::make_shared<std::atomic<uint64_t>>(0);  // channel 0, source -> destination
  std::shared_ptr<std::atomic<uint64_t>> to_source_bytes =
      std::make_shared<std::atomic<uint64_t>>(0);  // channel 0, destination -> source
  FakeVm* dest() const { return in && *in ? static_cast<FakeVm*>((*in)->vm.get()) : nullptr; }
};

struct RunSetup {
  size_t channels = 1;
  migration::SenderOptions sender;
  migration::ReceiverOptions receiver;
  std::vector<PipeFaults> to_dest;    // per channel (missing = none)
  std::vector<PipeFaults> to_source;  // per channel
  migration::ProgressFn progress;
  bool reverse_channel_order = false;           // hand the receiver its streams in reverse
  std::function<void(FakeVm&)> configure_dest;  // e.g. inject faults into the destination
};

inline RunResult run_migration(FakeVm& source, RunSetup setup) {
  RunResult result;
  std::vector<std::unique_ptr<migration::ByteStream>> src, dst;
  for (size_t c = 0; c < setup.channels; ++c) {
    PipeFaults a = c < setup.to_dest.size() ? setup.to_dest[c] : PipeFaults{};
    PipeFaults b = c < setup.to_source.size() ? setup.to_source[c] : PipeFaults{};
    if (c == 0) {
      a.counter = result.to_dest_bytes;
      b.counter = result.to_source_bytes;
    }
    auto [s, d] = make_stream_pair(a, b, "mem" + std::to_string(c));
    src.push_back(std::move(s));
    dst.push_back(std::move(d));
  }
  if (setup.reverse_channel_order) {
    std::reverse(dst.begin(), dst.end());
  }
  auto factory = fake_factory(result.dest_resumes, setup.configure_dest);
  std::thread dest(
      [&] { result.in.emplace(migration::migrate_in(std::move(dst), factory, setup.receiver)); });
  result.out.emplace(migration::migrate_out(source, std::move(src), setup.sender, setup.progress));
  dest.join();
  return result;
}

/// Memory of a VM as it is now.
inline std::vector<uint8_t> snapshot(const FakeVm& vm) { return vm.memory(); }

}  // namespace ferry::testing
