// Builders for the synthetic kernels the boot unit tests load: a Ferry64 flat image,
// multiboot a.out-kludge and ELF32 kernels, an ELF64 vmlinux with the PVH note, and a
// bzImage with a 64-bit setup header. Plus a guest-memory fixture over plain buffers.
#pragma once

#include <elf.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "ferry/vmm/boot/boot_structs.h"
#include "ferry/vmm/guest_memory.h"

namespace ferry::vmm::boot::test {

using Bytes = std::vector<uint8_t>;

template <class T>
void put(Bytes& b, size_t off, T value) {
  if (b.size() < off + sizeof(T)) {
    b.resize(off + sizeof(T));
  }
  std::memcpy(b.data() + off, &value, sizeof(T));
}

template <class T>
T get(const Bytes& b, size_t off) {
  T value;
  std::memcpy(&value, b.data() + off, sizeof(T));
  return value;
}

/// Guest RAM over vectors: `low` bytes at 0 and optionally `high` bytes at 4 GiB. Filled
/// with 0xAA so tests can see what the loader zeroed.
struct TestRam {
  explicit TestRam(uint64_t low, uint64_t high = 0) : low_buf(low, 0xaa), high_buf(high, 0xaa) {
    std::vector<GuestRegion> regions{{0, low, low_buf.data(), 0, 0}};
    if (high != 0) {
      regions.push_back({kMmioHoleEnd, high, high_buf.data(), 0, 0});
    }
    mem = GuestMemory::wrap(std::move(regions));
  }
  template <class T>
  T at(uint64_t gpa) const {
    return *mem->read_obj<T>(gpa);
  }
  const uint8_t* ptr(uint64_t gpa) const { return low_buf.data() + gpa; }
  std::string str(uint64_t gpa) const { return reinterpret_cast<const char*>(ptr(gpa)); }

  Bytes low_buf;
  Bytes high_buf;
  std::unique_ptr<GuestMemory> mem;
};

/// A Ferry64 image of `size` bytes loading at 1 MiB, header at `header_off`.
inline Bytes ferry64_image(size_t size = 0x3000, size_t header_off = 0x1000,
                           uint64_t bss = 0x2000) {
  Bytes b(size);
  for (size_t i = 0; i < size; ++i) {
    b[i] = static_cast<uint8_t>(i * 7 + 1);
  }
  const Ferry64Header h{kFerry64Magic, 0x100000 + 0x100, 0x100000, 0x100000 + size,
                        0x100000 + size + bss};
  put(b, header_off, h);
  return b;
}

/// A multiboot a.out-kludge kernel: header at 0x40, loads at 2 MiB, entry +0x80.
inline Bytes multiboot_aout(uint32_t flags = (1u << 16) | 3u, size_t size = 0x2000) {
  Bytes b(size, 0x90);
  const uint32_t load = 0x200000;
  put<uint32_t>(b, 0x40, kMultibootHeaderMagic);
  put<uint32_t>(b, 0x44, flags);
  put<uint32_t>(b, 0x48, static_cast<uint32_t>(-(kMultibootHeaderMagic + flags)));
  put<uint32_t>(b, 0x4c, load + 0x40);           // header_addr
  put<uint32_t>(b, 0x50, load);                  // load_addr
  put<uint32_t>(b, 0x54, 0);                     // load_end_addr: whole file
  put<uint32_t>(b, 0x58, load + size + 0x1000);  // bss_end_addr
  put<uint32_t>(b, 0x5c, load + 0x80);           // entry_addr
  return b;
}

struct ElfSeg {
  uint32_t type;
  uint64_t paddr, vaddr;
  Bytes data;
  uint64_t memsz;
};

/// An ELF32 or ELF64 executable with the given segments (data laid out after the headers).
inline Bytes make_elf(bool is64, uint64_t entry, const std::vector<ElfSeg>& segs) {
  Bytes b;
  const size_t ehsize = is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
  const size_t phsize = is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
  size_t data_off = (ehsize + phsize * segs.size() + 0xf) & ~size_t{0xf};
  b.resize(data_off);
  std::vector<size_t> offsets;
  for (const ElfSeg& s : segs) {
    offsets.push_back(b.size());
    b.insert(b.end(), s.data.begin(), s.data.end());
    b.resize((b.size() + 3) & ~size_t{3});
  }
  if (is64) {
    Elf64_Ehdr e{};
    std::memcpy(e.e_ident, ELFMAG, SELFMAG);
    e.e_ident[EI_CLASS] = ELFCLASS64;
    e.e_ident[EI_DATA] = ELFDATA2LSB;
    e.e_ident[EI_VERSION] = EV_CURRENT;
    e.e_type = ET_EXEC;
    e.e_machine = EM_X86_64;
    e.e_version = EV_CURRENT;
    e.e_entry = entry;
    e.e_phoff = ehsize;
    e.e_ehsize = static_cast<uint16_t>(ehsize);
    e.e_phentsize = static_cast<uint16_t>(phsize);
    e.e_phnum = static_cast<uint16_t>(segs.size());
    put(b, 0, e);
    for (size_t i = 0; i < segs.size(); ++i) {
      Elf64_Phdr p{};
      p.p_type = segs[i].type;
      p.p_offset = offsets[i];
      p.p_vaddr = segs[i].vaddr;
      p.p_paddr = segs[i].paddr;
      p.p_filesz = segs[i].data.size();
      p.p_memsz = segs[i].memsz;
      put(b, ehsize + i * phsize, p);
    }
  } else {
    Elf32_Ehdr e{};
    std::memcpy(e.e_ident, ELFMAG, SELFMAG);
    e.e_ident[EI_CLASS] = ELFCLASS32;
    e.e_ident[EI_DATA] = ELFDATA2LSB;
    e.e_ident[EI_VERSION] = EV_CURRENT;
    e.e_type = ET_EXEC;
    e.e_machine = EM_386;
    e.e_version = EV_CURRENT;
    e.e_entry = static_cast<uint32_t>(entry);
    e.e_phoff = static_cast<uint32_t>(ehsize);
    e.e_ehsize = static_cast<uint16_t>(ehsize);
    e.e_phentsize = static_cast<uint16_t>(phsize);
    e.e_phnum = static_cast<uint16_t>(segs.size());
    put(b, 0, e);
    for (size_t i = 0; i < segs.size(); ++i) {
      Elf32_Phdr p{};
      p.p_type = segs[i].type;
      p.p_offset = static_cast<uint32_t>(offsets[i]);
      p.p_vaddr = static_cast<uint32_t>(segs[i].vaddr);
      p.p_paddr = static_cast<uint32_t>(segs[i].paddr);
      p.p_filesz = static_cast<uint32_t>(segs[i].data.size());
      p.p_memsz = static_cast<uint32_t>(segs[i].memsz);
      put(b, ehsize + i * phsize, p);
    }
  }
  return b;
}

/// One ELF note (name padded to 4, desc padded to 4).
inline Bytes note(const std::string& name, uint32_t type, const Bytes& desc) {
  Bytes b;
  put<uint32_t>(b, 0, static_cast<uint32_t>(name.size() + 1));
  put<uint32_t>(b, 4, static_cast<uint32_t>(desc.size()));
  put<uint32_t>(b, 8, type);
  b.insert(b.end(), name.begin(), name.end());
  b.push_back(0);
  b.resize((b.size() + 3) & ~size_t{3});
  b.insert(b.end(), desc.begin(), desc.end());
  b.resize((b.size() + 3) & ~size_t{3});
  return b;
}

inline Bytes le64(uint64_t v) {
  Bytes b;
  put(b, 0, v);
  return b;
}

constexpr uint64_t kPvhKernelAt = 0x1000000;
constexpr uint64_t kPvhEntry = kPvhKernelAt + 0x40;

/// A vmlinux-like ELF64: one PT_LOAD at 16 MiB (virtual 0xffffffff81000000), 4 KiB of
/// text plus 8 KiB of bss, and a PT_NOTE with an unrelated note then the PHYS32 entry.
inline Bytes pvh_vmlinux(const Bytes& entry_desc = le64(kPvhEntry)) {
  Bytes text(0x1000);
  for (size_t i = 0; i < text.size(); ++i) {
    text[i] = static_cast<uint8_t>(i ^ 0x5a);
  }
  Bytes notes = note("Xen", 6, {'l', 'i', 'n', 'u', 'x', 0});
  Bytes entry = note("Xen", 18, entry_desc);
  notes.insert(notes.end(), entry.begin(), entry.end());
  return make_elf(true, 0xffffffff81000000ull,
                  {{PT_LOAD, kPvhKernelAt, 0xffffffff81000000ull, text, 0x3000},
                   {PT_NOTE, 0, 0, notes, notes.size()}});
}

constexpr uint64_t kBzPrefAddress = 0x1000000;
constexpr size_t kBzPmOffset = 5 * 512;  // setup_sects = 4

/// A bzImage with protocol 2.15 setup header and a 0x1000-byte "protected-mode kernel".
inline Bytes bzimage(uint16_t version = 0x020f) {
  Bytes b(kBzPmOffset + 0x1000, 0);
  for (size_t i = kBzPmOffset; i < b.size(); ++i) {
    b[i] = static_cast<uint8_t>(i * 3);
  }
  put<uint8_t>(b, zp::kSetupSects, 4);
  put<uint16_t>(b, zp::kBootFlag, zp::kBootFlagValue);
  put<uint8_t>(b, 0x200, 0xeb);  // jmp short to the end of the header
  put<uint8_t>(b, zp::kHeaderEndByte, 0x66);
  put<uint32_t>(b, zp::kHeaderMagic, zp::kHeaderMagicValue);
  put<uint16_t>(b, zp::kVersion, version);
  put<uint8_t>(b, zp::kLoadFlags, zp::kLoadedHigh);
  put<uint32_t>(b, zp::kCode32Start, 0x100000);
  put<uint32_t>(b, zp::kInitrdAddrMax, 0x7fffffff);
  put<uint32_t>(b, zp::kKernelAlignment, 0x200000);
  put<uint8_t>(b, zp::kRelocatableKernel, 1);
  put<uint16_t>(b, zp::kXloadflags, 0x1f);
  put<uint32_t>(b, zp::kCmdlineSize, 2047);
  put<uint64_t>(b, zp::kPrefAddress, kBzPrefAddress);
  put<uint32_t>(b, zp::kInitSize, 0x4000);
  return b;
}

}  // namespace ferry::vmm::boot::test
