#include "elf_reader.h"

#include <elf.h>

#include "boot_common.h"

namespace ferry::vmm::boot::detail {

namespace {

template <class Ehdr, class Phdr>
VmmResult<ElfImage> parse_class(std::span<const uint8_t> file, std::string_view what) {
  auto ehdr = read_at<Ehdr>(file, 0);
  if (!ehdr) {
    return fail(kernel_error("{}: ELF header truncated ({} bytes)", what, file.size()));
  }
  if (ehdr->e_type != ET_EXEC && ehdr->e_type != ET_DYN) {
    return fail(kernel_error("{}: ELF type {} is not an executable", what, ehdr->e_type));
  }
  if (ehdr->e_phnum == 0 || ehdr->e_phnum > kMaxProgramHeaders) {
    return fail(kernel_error("{}: {} program headers (want 1..{})", what, ehdr->e_phnum,
                             kMaxProgramHeaders));
  }
  if (ehdr->e_phentsize != sizeof(Phdr)) {
    return fail(kernel_error("{}: program header size {} (want {})", what, ehdr->e_phentsize,
                             sizeof(Phdr)));
  }
  ElfImage image;
  image.is64 = sizeof(Ehdr) == sizeof(Elf64_Ehdr);
  image.machine = ehdr->e_machine;
  image.entry = ehdr->e_entry;
  for (uint32_t i = 0; i < ehdr->e_phnum; ++i) {
    const uint64_t at = uint64_t{ehdr->e_phoff} + uint64_t{i} * sizeof(Phdr);
    auto phdr = read_at<Phdr>(file, at);
    if (!phdr) {
      return fail(
          kernel_error("{}: program header {} at {:#x} lies past the end of the file "
                       "({} bytes)",
                       what, i, at, file.size()));
    }
    ElfSegment seg{phdr->p_type,  phdr->p_offset, phdr->p_vaddr,
                   phdr->p_paddr, phdr->p_filesz, phdr->p_memsz};
    if (seg.type == kPtLoad || seg.type == kPtNote) {
      if (!fits(seg.offset, seg.filesz, file.size())) {
        return fail(
            kernel_error("{}: segment {} file range [{:#x}, +{:#x}) lies outside the "
                         "file ({} bytes)",
                         what, i, seg.offset, seg.filesz, file.size()));
      }
    }
    if (seg.type == kPtLoad) {
      if (seg.filesz > seg.memsz) {
        return fail(kernel_error("{}: segment {} filesz {:#x} exceeds memsz {:#x}", what, i,
                                 seg.filesz, seg.memsz));
      }
      if (seg.paddr > UINT64_MAX - seg.memsz) {
        return fail(kernel_error("{}: segment {} [{:#x}, +{:#x}) wraps around", what, i, seg.paddr,
                                 seg.memsz));
      }
    }
    image.segments.push_back(seg);
  }
  return image;
}

constexpr uint64_t align4(uint64_t v) { return (v + 3) & ~uint64_t{3}; }

}  // namespace

VmmResult<ElfImage> parse_elf(std::span<const uint8_t> file, std::string_view what) {
  if (file.size() < EI_NIDENT || file[0] != ELFMAG0 || file[1] != ELFMAG1 || file[2] != ELFMAG2 ||
      file[3] != ELFMAG3) {
    return fail(kernel_error("{}: not an ELF file", what));
  }
  if (file[EI_DATA] != ELFDATA2LSB) {
    return fail(kernel_error("{}: ELF file is not little-endian", what));
  }
  if (file[EI_CLASS] == ELFCLASS64) {
    return parse_class<Elf64_Ehdr, Elf64_Phdr>(file, what);
  }
  if (file[EI_CLASS] == ELFCLASS32) {
    return parse_class<Elf32_Ehdr, Elf32_Phdr>(file, what);
  }
  return fail(kernel_error("{}: unknown ELF class {}", what, file[EI_CLASS]));
}

VmmResult<void> for_each_note(std::span<const uint8_t> file, const ElfImage& image,
                              std::string_view what,
                              const std::function<void(const ElfNote&)>& visit) {
  for (const ElfSegment& seg : image.segments) {
    if (seg.type != kPtNote) {
      continue;
    }
    if (seg.filesz > kMaxNoteSegmentBytes) {
      return fail(kernel_error("{}: note segment of {:#x} bytes exceeds {:#x}", what,
                               seg.filesz, kMaxNoteSegmentBytes));
    }
    // parse_elf checked that the segment lies inside the file.
    const std::span<const uint8_t> notes = file.subspan(seg.offset, seg.filesz);
    uint64_t pos = 0;
    while (notes.size() - pos >= 12) {
      const uint32_t namesz = *read_at<uint32_t>(notes, pos);
      const uint32_t descsz = *read_at<uint32_t>(notes, pos + 4);
      const uint32_t type = *read_at<uint32_t>(notes, pos + 8);
      const uint64_t name_at = pos + 12;
      const uint64_t desc_at = name_at + align4(namesz);
      if (!fits(name_at, align4(namesz), notes.size()) || !fits(desc_at, descsz, notes.size())) {
        return fail(
            kernel_error("{}: note at {:#x} (namesz {}, descsz {}) runs past its "
                         "segment ({:#x} bytes)",
                         what, seg.offset + pos, namesz, descsz, notes.size()));
      }
      std::string_view name(reinterpret_cast<const char*>(notes.data() + name_at),  // SAFETY:
                            namesz);  // byte view of checked range
      if (!name.empty() && name.back() == '\0') {
        name.remove_suffix(1);
      }
      visit(ElfNote{name, type, notes.subspan(desc_at, descsz)});
      pos = desc_at + align4(descsz);
      if (pos > notes.size()) {
        break;  // the last descriptor's padding may be cut by the segment end
      }
    }
  }
  return {};
}

VmmResult<LoadedRange> load_elf_segments(GuestMemory& mem, std::span<const uint8_t> file,
                                         const ElfImage& image, std::string_view what) {
  LoadedRange range{UINT64_MAX, 0};
  for (size_t i = 0; i < image.segments.size(); ++i) {
    const ElfSegment& seg = image.segments[i];
    if (seg.type != kPtLoad || seg.memsz == 0) {
      continue;
    }
    auto loaded = load_segment(mem, seg.paddr, file.subspan(seg.offset, seg.filesz), seg.memsz,
                               fmt::format("{}: segment {}", what, i));
    if (!loaded) {
      return fail(loaded.error());
    }
    range.start = std::min(range.start, seg.paddr);
    range.end = std::max(range.end, seg.paddr + seg.memsz);
  }
  if (range.end == 0) {
    return fail(kernel_error("{}: no loadable (PT_LOAD) segment", what));
  }
  return range;
}

}  // namespace ferry::vmm::boot::detail
