// Destination, data path: PageBatch / DiskBatch records from any channel, validated
// (gpa in RAM, extent in the disk, codec, lengths, hash) and applied; ChannelDone counts.
#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <array>

#include "absent_pages.h"
#include "receiver_impl.h"

namespace ferry::migration::detail {

Status Receiver::apply_data(const RawRecord& rec, BlockDecoder& decoder, uint32_t channel) {
  ++channel_records_[channel];
  if (rec.type == RecordType::DiskBatch) {
    return apply_disk(rec.payload, decoder);
  }
  return apply_pages(rec.payload, decoder, channel_pages_[channel], channel_holes_[channel]);
}

Status Receiver::apply_pages(std::span<const uint8_t> payload, BlockDecoder& decoder,
                             uint64_t& pages, HoleWindow& holes) {
  ByteReader r(payload);
  auto header = decode_page_batch_header(r);
  if (!header) {
    return fail(proto(header.error().detail));
  }
  pages += header->count;
  size_t pos = r.position();
  if (header->round == 0) {
    prefault_data_pages(payload.subspan(pos), header->count);
  }
  for (uint32_t i = 0; i < header->count; ++i) {
    ByteReader er(payload.subspan(pos));
    auto e = decode_page_entry(er);
    if (!e) {
      return fail(proto(e.error().detail));
    }
    pos += kPageEntrySize;
    if (payload.size() - pos < e->payload_length) {
      return fail(proto(fmt::format("page {:#x}: payload truncated", e->gpa)));
    }
    std::span<const uint8_t> body = payload.subspan(pos, e->payload_length);
    pos += e->payload_length;
    auto idx = pages_.index_of(e->gpa);
    if (!idx) {
      return fail(proto(fmt::format("page gpa {:#x} is outside guest RAM", e->gpa)));
    }
    // A page always travels on one channel, so rounds arrive in order; an older round
    // can only come from a misbehaving peer and must not overwrite newer bytes.
    std::atomic<uint32_t>& round = page_round_[*idx];
    if (header->round < round.load()) {
      continue;
    }
    round = header->round;
    std::span<uint8_t> page = pages_.page(*idx);
    auto codec = static_cast<PageCodec>(e->codec);
    if (codec == PageCodec::SameAsBefore) {
      if (XXH3_64bits(page.data(), page.size()) != e->hash) {
        return fail(MigrationError{MigrationErrc::Codec,
                                   phase_,
                                   {},
                                   fmt::format("page {:#x}: marked same-as-before but this side "
                                               "holds different bytes",
                                               e->gpa)});
      }
      ++same_;
    } else if (codec == PageCodec::Zero && body.empty() && header->round == 0 && absent_is_zero_ &&
               is_hole(*idx, e->hash, holes)) {
      ++zero_;  // a hole already reads as zero: writing zeros would only allocate it
    } else {
      if (auto d = decoder.decode(codec, body, e->hash, page); !d) {
        return fail(MigrationError{MigrationErrc::Codec,
                                   phase_,
                                   {},
                                   fmt::format("page {:#x}: {}", e->gpa, d.error().detail)});
      }
      ++(codec == PageCodec::Zero ? zero_ : codec == PageCodec::Raw ? raw_ : zstd_);
    }
    page_hash_[*idx] = e->hash;
  }
  if (pos != payload.size()) {
    return fail(proto(fmt::format("PageBatch has {} trailing bytes", payload.size() - pos)));
  }
  return {};
}

void Receiver::prefault_data_pages(std::span<const uint8_t> entries, uint32_t count) const {
  // Round 0 writes most pages for the first time: fault in each run of consecutive pages
  // that carry data in one call. Zero pages are left out (holes stay holes). Malformed
  // entries stop the scan; apply_pages reports them.
  uint64_t run_first = 0;
  uint64_t run_count = 0;
  size_t pos = 0;
  for (uint32_t i = 0; i < count; ++i) {
    ByteReader er(entries.subspan(pos));
    auto e = decode_page_entry(er);
    if (!e || entries.size() - pos - kPageEntrySize < e->payload_length) {
      break;
    }
    pos += kPageEntrySize + e->payload_length;
    auto idx = pages_.index_of(e->gpa);
    const auto codec = static_cast<PageCodec>(e->codec);
    if (!idx || (codec != PageCodec::Raw && codec != PageCodec::Zstd)) {
      continue;
    }
    if (run_count > 0 && *idx == run_first + run_count) {
      ++run_count;
      continue;
    }
    if (run_count > 0) {
      populate_for_write(pages_, run_first, run_count);
    }
    run_first = *idx;
    run_count = 1;
  }
  if (run_count > 0) {
    populate_for_write(pages_, run_first, run_count);
  }
}

bool Receiver::is_hole(uint64_t index, uint64_t hash, HoleWindow& holes) const {
  if (hash != zero_page_hash_) {
    return false;  // let the decoder report the mismatch
  }
  const uint64_t base = index & ~uint64_t{63};
  if (holes.base != base) {
    // Pages of round 0 come in address order, so one window serves a whole batch.
    std::array<uint64_t, 64> indices;
    std::array<uint8_t, 64> absent{};
    const size_t n = std::min<uint64_t>(64, pages_.page_count() - base);
    for (size_t i = 0; i < n; ++i) {
      indices[i] = base + i;
    }
    find_absent(pages_, {indices.data(), n}, {absent.data(), n});
    holes.base = base;
    holes.absent = 0;
    for (size_t i = 0; i < n; ++i) {
      holes.absent |= uint64_t{absent[i]} << i;
    }
  }
  // A window is read before its pages are written by this thread (they travel on this
  // channel only), and a written page stops being a hole, so the cached bit is only
  // trusted for the page's first (round-0) record: exactly when this is called.
  return (holes.absent >> (index - base) & 1) != 0;
}

Status Receiver::apply_disk(std::span<const uint8_t> payload, BlockDecoder& decoder) {
  ByteReader r(payload);
  auto h = decode_disk_extent_header(r);
  if (!h) {
    return fail(proto(h.error().detail));
  }
  if (h->disk >= disks_.size()) {
    return fail(
        proto(fmt::format("disk index {} but the guest has {} disks", h->disk, disks_.size())));
  }
  DestDisk& d = disks_[h->disk];
  if (h->offset % d.block_size != 0 || h->offset > d.size || d.size - h->offset < h->length ||
      (h->length % d.block_size != 0 && h->offset + h->length != d.size)) {
    return fail(
        proto(fmt::format("disk {} extent [{}, +{}) outside the {}-byte disk or not "
                          "block-aligned",
                          h->disk, h->offset, h->length, d.size)));
  }
  if (r.remaining() != h->payload_length) {
    return fail(proto(fmt::format("disk extent payload is {} bytes, header says {}", r.remaining(),
                                  h->payload_length)));
  }
  std::vector<uint8_t> data(h->length);  // <= kMaxDiskExtent, checked by the decoder
  if (auto dec = decoder.decode(static_cast<PageCodec>(h->codec), payload.subspan(r.position()),
                                h->hash, data);
      !dec) {
    return fail(MigrationError{
        MigrationErrc::Codec,
        phase_,
        {},
        fmt::format("disk {} extent at {}: {}", h->disk, h->offset, dec.error().detail)});
  }
  std::lock_guard lock(d.io);
  if (auto w = d.disk->write_at(h->offset, data); !w) {
    return fail(MigrationError{MigrationErrc::VmPort,
                               phase_,
                               {},
                               fmt::format("writing disk {}: {}", h->disk, w.error().message)});
  }
  for (uint64_t off = 0; off < h->length; off += d.block_size) {
    size_t len = std::min<size_t>(d.block_size, h->length - off);
    d.block_hash[(h->offset + off) / d.block_size] = XXH3_64bits(data.data() + off, len);
  }
  disk_bytes_ += h->length;
  return {};
}

Status Receiver::check_done(const ChannelDone& done, uint32_t channel) {
  if (done.channel != channel || done.data_records != channel_records_[channel] ||
      done.pages != channel_pages_[channel]) {
    return fail(
        proto(fmt::format("channel {}: ChannelDone says {} records / {} pages, {} / {} "
                          "arrived",
                          channel, done.data_records, done.pages, channel_records_[channel],
                          channel_pages_[channel])));
  }
  channel_done_[channel] = 1;
  return {};
}

void Receiver::data_channel(uint32_t index) {
  BlockDecoder decoder;
  ByteStream& s = *ch_[index];
  while (!failed_) {
    auto rec = read_record(s, phase_);
    if (!rec) {
      record_failure(rec.error());
      return;
    }
    wire_bytes_ += rec->wire_size();
    Status st;
    if (rec->type == RecordType::PageBatch || rec->type == RecordType::DiskBatch) {
      st = apply_data(*rec, decoder, index);
    } else if (rec->type == RecordType::ChannelDone) {
      auto done = decode_channel_done(rec->payload);
      st = done ? check_done(*done, index) : Status(fail(proto(done.error().detail)));
      if (st) {
        return;
      }
    } else {
      st = fail(proto(fmt::format("{} record on data channel {}",
                                  record_type_name(static_cast<uint16_t>(rec->type)), index)));
    }
    if (!st) {
      record_failure(st.error());
      return;
    }
  }
}

}  // namespace ferry::migration::detail
