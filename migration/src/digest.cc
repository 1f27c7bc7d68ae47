#include "digest.h"

#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <thread>

namespace ferry::migration {

static_assert(std::endian::native == std::endian::little,
              "hash lists are hashed as in-memory u64 arrays; big-endian hosts need a swap");

uint64_t hash_list(std::span<const uint64_t> hashes) {
  return XXH3_64bits(hashes.data(), hashes.size_bytes());
}

std::vector<RegionDigest> memory_digest_from(const GuestPages& pages,
                                             std::span<const uint64_t> page_hashes) {
  std::vector<RegionDigest> out;
  for (size_t r = 0; r < pages.regions().size(); ++r) {
    const RamRegion& reg = pages.regions()[r];
    uint64_t first = pages.first_page(r);
    uint64_t count = reg.size / kPageSize;
    out.push_back({reg.gpa, reg.size, hash_list(page_hashes.subspan(first, count))});
  }
  return out;
}

std::vector<RegionDigest> memory_digest_full(const GuestPages& pages, unsigned threads) {
  std::vector<uint64_t> hashes(pages.page_count());
  auto work = [&](uint64_t begin, uint64_t end) {
    for (uint64_t i = begin; i < end; ++i) {
      std::span<uint8_t> p = pages.page(i);
      hashes[i] = XXH3_64bits(p.data(), p.size());
    }
  };
  const uint64_t n = pages.page_count();
  threads = std::clamp<unsigned>(threads, 1, 16);
  if (threads == 1 || n < 4096) {
    work(0, n);
  } else {
    // The blackout waits for this: split the pages over a few threads.
    std::vector<std::thread> pool;
    const uint64_t per = (n + threads - 1) / threads;
    for (unsigned t = 1; t < threads; ++t) {
      pool.emplace_back(work, std::min(n, t * per), std::min(n, (t + 1) * per));
    }
    work(0, std::min(n, per));
    for (auto& th : pool) {
      th.join();
    }
  }
  return memory_digest_from(pages, hashes);
}

DiskDigest disk_digest_from(uint64_t size, uint32_t block_size,
                            std::span<const uint64_t> block_hashes) {
  return DiskDigest{size, block_size, hash_list(block_hashes)};
}

VmResult<DiskDigest> disk_digest_full(MigratableDisk& disk, uint64_t size, uint32_t block_size) {
  std::vector<uint64_t> hashes(block_count(size, block_size));
  std::vector<uint8_t> buf(block_size);
  for (uint64_t b = 0; b < hashes.size(); ++b) {
    uint64_t off = b * block_size;
    size_t len = static_cast<size_t>(std::min<uint64_t>(block_size, size - off));
    auto r = disk.read_at(off, std::span<uint8_t>(buf.data(), len));
    if (!r) {
      return fail(r.error());
    }
    hashes[b] = XXH3_64bits(buf.data(), len);
  }
  return disk_digest_from(size, block_size, hashes);
}

}  // namespace ferry::migration
